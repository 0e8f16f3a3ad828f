//! Generated code for the `auth.v1` and `history.v1` gRPC packages, and the
//! encoded file descriptor set that server reflection serves.
//!
//! The `.proto` sources live beside this crate (`proto/auth/v1/auth.proto`,
//! `proto/history/v1/history.proto`) and are compiled once, here.

/// `auth.v1`: Better Auth token verification.
pub mod auth {
    /// Version 1 of the auth API.
    #[allow(missing_docs, unreachable_pub, clippy::all)]
    pub mod v1 {
        tonic::include_proto!("auth.v1");
    }
}

/// `history.v1`: conversations and messages.
pub mod history {
    /// Version 1 of the history API.
    #[allow(missing_docs, unreachable_pub, clippy::all)]
    pub mod v1 {
        tonic::include_proto!("history.v1");
    }
}

/// The encoded `FileDescriptorSet` of both packages and the well-known types
/// they import, for `tonic_reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));

/// Fully qualified gRPC service name of `auth.v1.AuthService`.
pub const AUTH_SERVICE_NAME: &str = "auth.v1.AuthService";
/// Fully qualified gRPC service name of `history.v1.HistoryService`.
pub const HISTORY_SERVICE_NAME: &str = "history.v1.HistoryService";
