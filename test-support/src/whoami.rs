//! A downstream service for the identity layer: it implements
//! `auth.v1.AuthService` by answering with the caller the layer verified (or
//! found in its cache), so the layer can be tested and measured exactly as a
//! real service wraps itself in it.

use chat_proto::auth::v1::{VerifyTokenRequest, VerifyTokenResponse, auth_service_server::AuthService};
use service_kit::Caller;
use tonic::{Request, Response, Status};

/// Answers `VerifyToken` with the request's [`Caller`].
#[derive(Debug, Clone, Copy, Default)]
pub struct WhoAmI;

#[tonic::async_trait]
impl AuthService for WhoAmI {
    async fn verify_token(
        &self,
        request: Request<VerifyTokenRequest>,
    ) -> Result<Response<VerifyTokenResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(VerifyTokenResponse { identity: Some(caller.identity().clone()) }))
    }
}
