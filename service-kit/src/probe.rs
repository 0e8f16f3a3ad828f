//! `healthcheck`: asks a running service's grpc.health.v1 whether it serves,
//! for container health checks (no grpc_health_probe binary needed).

use std::{net::SocketAddr, time::Duration};

pub use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// Asks `grpc.health.v1.Health/Check` (overall status) at `addr` within
/// `timeout`. A wildcard listen address (`0.0.0.0`) is probed on loopback.
pub async fn check(addr: SocketAddr, timeout: Duration) -> Result<ServingStatus, String> {
    let addr = if addr.ip().is_unspecified() {
        SocketAddr::new(
            if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() },
            addr.port(),
        )
    } else {
        addr
    };
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|error| error.to_string())?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = endpoint.connect().await.map_err(|error| format!("cannot connect to {addr}: {error}"))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest { service: String::new() })
        .await
        .map_err(|status| format!("health check failed: {}", status.message()))?;
    ServingStatus::try_from(response.into_inner().status).map_err(|error| error.to_string())
}

/// Runs [`check`] and turns the answer into a process exit code (0 = serving).
pub async fn exit_code(addr: SocketAddr) -> i32 {
    match check(addr, Duration::from_secs(3)).await {
        Ok(ServingStatus::Serving) => 0,
        Ok(status) => {
            eprintln!("{addr}: {}", status.as_str_name());
            1
        }
        Err(error) => {
            eprintln!("{error}");
            1
        }
    }
}
