//! What both servers share on the way in: the listeners, the accepted
//! connections' socket options, and the header size limit.

use std::time::Duration;

/// Largest HTTP/2 header list a server accepts (64 KiB).
pub const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

/// Accepted connections of `listener`, with `TCP_NODELAY` (without it, small
/// gRPC frames wait out Nagle's algorithm and delayed ACKs: ~40 ms per call)
/// and TCP keepalive so dead peers are noticed.
pub fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)))
}

/// The sockets a service serves on: gRPC (and gRPC-web), and optionally the
/// admin HTTP port (`/metrics`).
#[derive(Debug)]
pub struct Listeners {
    /// gRPC and gRPC-web.
    pub grpc: tokio::net::TcpListener,
    /// Admin HTTP (`/metrics`); `None` serves no metrics.
    pub admin: Option<tokio::net::TcpListener>,
}

impl Listeners {
    /// Only a gRPC listener.
    pub fn grpc(grpc: tokio::net::TcpListener) -> Self {
        Self { grpc, admin: None }
    }
}
