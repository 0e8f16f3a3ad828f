//! Request size limit with a precise status.
//!
//! A gRPC request body starts with a 5-byte frame header whose last four
//! bytes are the message length. This layer reads just that header and, when
//! the announced message is larger than the limit, answers
//! `RESOURCE_EXHAUSTED` (reason `MESSAGE_TOO_LARGE`) at once: the message is
//! never read, let alone buffered. (tonic's own limit, kept as a backstop,
//! answers `OUT_OF_RANGE`, which is not what gRPC clients expect for this.)
//! Every RPC of these services takes exactly one request message.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf as _, Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame};
use tonic::{Code, Status, body::Body, server::NamedService};
use tower::{Layer, Service};

use crate::status;

/// Tower layer refusing gRPC requests whose message exceeds `max_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct RequestSizeLayer {
    max_bytes: usize,
    domain: &'static str,
}

impl RequestSizeLayer {
    /// Refuses messages over `max_bytes`; errors carry `domain`.
    pub fn new(max_bytes: usize, domain: &'static str) -> Self {
        Self { max_bytes, domain }
    }
}

impl<S> Layer<S> for RequestSizeLayer {
    type Service = RequestSize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestSize { inner, limit: *self }
    }
}

/// The service [`RequestSizeLayer`] produces.
#[derive(Debug, Clone)]
pub struct RequestSize<S> {
    inner: S,
    limit: RequestSizeLayer,
}

impl<S: NamedService> NamedService for RequestSize<S> {
    const NAME: &'static str = S::NAME;
}

/// The body with its already-read first bytes put back in front.
struct Prefixed {
    prefix: Option<Bytes>,
    rest: Body,
}

impl HttpBody for Prefixed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }
}

impl<S> Service<http::Request<Body>> for RequestSize<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limit = self.limit;
        Box::pin(async move {
            let (parts, mut body) = request.into_parts();
            let mut head = BytesMut::new();
            let mut trailers = None;
            while head.len() < 5 {
                match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(mut data) => head.extend_from_slice(&data.copy_to_bytes(data.remaining())),
                        Err(frame) => {
                            trailers = frame.into_trailers().ok();
                            break;
                        }
                    },
                    // Let tonic report a broken body as it usually does.
                    Some(Err(_)) | None => break,
                }
            }
            if head.len() >= 5 {
                let announced = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
                if announced > limit.max_bytes {
                    return Ok(status::with_reason(
                        Code::ResourceExhausted,
                        limit.domain,
                        "MESSAGE_TOO_LARGE",
                        format!(
                            "the request message is {announced} bytes; this service accepts at most {} bytes per message",
                            limit.max_bytes
                        ),
                    )
                    .into_http());
                }
            }
            let rest = match trailers {
                // A body that ended early: hand tonic what there was.
                Some(_) => Body::empty(),
                None => body,
            };
            let body = Body::new(Prefixed { prefix: Some(head.freeze()), rest });
            inner.call(http::Request::from_parts(parts, body)).await
        })
    }
}
