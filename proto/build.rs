//! Compiles the `.proto` files with protox (pure Rust, no `protoc` needed) and
//! writes the descriptor set next to the generated code for server reflection.

use std::{env, fs, path::PathBuf};

use prost::Message as _;

const PROTOS: &[&str] = &["auth/v1/auth.proto", "history/v1/history.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    // `include_imports` keeps google/protobuf/*.proto in the set, so reflection
    // clients (grpcurl describe) can resolve Timestamp, Struct, FieldMask, Empty.
    let fds = protox::Compiler::new(["."])?
        .include_imports(true)
        .include_source_info(true)
        .open_files(PROTOS)?
        .file_descriptor_set();

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
