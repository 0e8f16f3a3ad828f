//! Server reflection, v1 and v1alpha (grpcurl 1.8.x speaks only v1alpha),
//! advertising the given services plus health, and resolving the
//! `google.rpc` error detail types our statuses carry.

use tonic_reflection::server::{
    v1::{ServerReflection as V1, ServerReflectionServer as V1Server},
    v1alpha::{ServerReflection as V1Alpha, ServerReflectionServer as V1AlphaServer},
};

/// Health's fully qualified service name.
pub const HEALTH_SERVICE_NAME: &str = "grpc.health.v1.Health";

fn builder<'a>(service_names: &[&str]) -> tonic_reflection::server::Builder<'a> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(chat_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // google.rpc.ErrorInfo and BadRequest, so grpcurl can print error details.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(HEALTH_SERVICE_NAME);
    for name in service_names {
        builder = builder.with_service_name(*name);
    }
    builder
}

/// Reflection services (v1, v1alpha) advertising `service_names` and health.
#[allow(clippy::type_complexity)]
pub fn services(
    service_names: &[&str],
) -> Result<(V1Server<impl V1>, V1AlphaServer<impl V1Alpha>), tonic_reflection::server::Error> {
    Ok((builder(service_names).build_v1()?, builder(service_names).build_v1alpha()?))
}
