//! The `auth.v1.AuthService` gRPC implementation.

use std::sync::Arc;

use chat_proto::auth::v1::{VerifyTokenRequest, VerifyTokenResponse, auth_service_server::AuthService};
use tonic::{Request, Response, Status};

use crate::verifier::Verifier;

/// Serves `VerifyToken` with a [`Verifier`].
#[derive(Debug, Clone)]
pub struct AuthGrpc {
    verifier: Arc<Verifier>,
}

impl AuthGrpc {
    /// A service answering with `verifier`.
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Self { verifier }
    }
}

#[tonic::async_trait]
impl AuthService for AuthGrpc {
    async fn verify_token(
        &self,
        request: Request<VerifyTokenRequest>,
    ) -> Result<Response<VerifyTokenResponse>, Status> {
        let token = request.into_inner().token;
        // Callers sometimes forward the whole authorization value.
        let token = token.strip_prefix("Bearer ").or_else(|| token.strip_prefix("bearer ")).unwrap_or(&token).trim();
        match self.verifier.verify(token).await {
            Ok(identity) => {
                tracing::debug!(user_id = %identity.user_id, kid = %identity.key_id, "token verified");
                Ok(Response::new(VerifyTokenResponse { identity: Some(identity) }))
            }
            Err(error) => {
                tracing::info!(reason = error.reason.as_str(), "token rejected: {}", error.message);
                Err(error.into())
            }
        }
    }
}
