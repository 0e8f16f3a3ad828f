//! Per-call telemetry: one span and one log line per gRPC call (method,
//! code, latency, user id; never metadata, so never the token), and the
//! Prometheus call counter and latency histogram.
//!
//! The layer sits inside gRPC-web translation (it sees native gRPC) and
//! outside the identity layer (it sees rejections too). The final code is
//! read from the trailers, or from the headers of a trailers-only answer;
//! a call the client abandons before the trailers counts as `Cancelled`.
//! Method labels are limited to the methods of the served protos, so a
//! client cannot grow the metric families with made-up paths.

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use http_body::{Body as HttpBody, Frame};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};
use prost::Message as _;
use tonic::{Code, body::Body, server::NamedService};
use tower::{Layer, Service};
use tracing::Instrument as _;

/// Labels of the call counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// Fully qualified service, e.g. `history.v1.HistoryService`.
    pub grpc_service: String,
    /// Method, e.g. `AppendMessages`.
    pub grpc_method: String,
    /// Final status code, e.g. `OK`, `NOT_FOUND`.
    pub grpc_code: String,
}

/// Labels of the latency histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// Fully qualified service.
    pub grpc_service: String,
    /// Method.
    pub grpc_method: String,
}

/// Latency buckets, in seconds: 0.5 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

fn new_latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

struct Inner {
    handled: Family<CallLabels, Counter>,
    latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    known: HashSet<String>,
}

/// Tower layer recording every call; cheap to clone.
#[derive(Clone)]
pub struct ObserveLayer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ObserveLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserveLayer").field("known_methods", &self.inner.known.len()).finish()
    }
}

/// Every `/package.Service/Method` path in the encoded descriptor sets.
pub fn known_methods(descriptor_sets: &[&[u8]]) -> HashSet<String> {
    let mut paths = HashSet::new();
    for encoded in descriptor_sets {
        let Ok(set) = prost_types::FileDescriptorSet::decode(*encoded) else { continue };
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for service in file.service {
                let service_name = service.name.unwrap_or_default();
                let qualified = if package.is_empty() { service_name } else { format!("{package}.{service_name}") };
                for method in service.method {
                    paths.insert(format!("/{qualified}/{}", method.name.unwrap_or_default()));
                }
            }
        }
    }
    paths
}

impl ObserveLayer {
    /// Registers `grpc_server_handled_total` and `grpc_server_handling_seconds`
    /// in `registry`, labelling only the methods in `known`.
    pub fn new(registry: &mut Registry, known: HashSet<String>) -> Self {
        let handled = Family::<CallLabels, Counter>::default();
        let latency = Family::<MethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(new_latency_histogram);
        registry.register("grpc_server_handled", "gRPC calls completed, by method and status code", handled.clone());
        registry.register(
            "grpc_server_handling_seconds",
            "gRPC call latency, from the request to the final status",
            latency.clone(),
        );
        Self { inner: Arc::new(Inner { handled, latency, known }) }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe { inner, shared: self.inner.clone() }
    }
}

/// The service [`ObserveLayer`] produces.
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    shared: Arc<Inner>,
}

impl<S> std::fmt::Debug for Observe<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observe").finish_non_exhaustive()
    }
}

impl<S: NamedService> NamedService for Observe<S> {
    const NAME: &'static str = S::NAME;
}

/// What is known about a call while it runs.
struct Call {
    shared: Arc<Inner>,
    service: String,
    method: String,
    started: Instant,
    span: tracing::Span,
    finished: bool,
}

/// The protobuf-style name of a code (`NOT_FOUND`), as grpc-status documents it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn grpc_code(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .map(Code::from_i32)
}

impl Call {
    fn finish(&mut self, code: Code) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let elapsed = self.started.elapsed();
        let code = code_name(code);
        self.shared
            .handled
            .get_or_create(&CallLabels {
                grpc_service: self.service.clone(),
                grpc_method: self.method.clone(),
                grpc_code: code.to_owned(),
            })
            .inc();
        self.shared
            .latency
            .get_or_create(&MethodLabels { grpc_service: self.service.clone(), grpc_method: self.method.clone() })
            .observe(elapsed.as_secs_f64());
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        self.span.record("code", code);
        self.span.record("latency_ms", latency_ms);
        self.span.in_scope(|| tracing::info!(code, latency_ms, "call finished"));
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // Dropped before a status was seen: the client went away.
        self.finish(Code::Cancelled);
    }
}

impl<S, B> Service<http::Request<B>> for Observe<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let path = request.uri().path();
        let (service, method) = if self.shared.known.contains(path) {
            let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((path, ""));
            (service.to_owned(), method.to_owned())
        } else {
            ("unknown".to_owned(), "unknown".to_owned())
        };
        let span = tracing::info_span!(
            "grpc",
            rpc.service = %service,
            rpc.method = %method,
            user_id = tracing::field::Empty,
            code = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        );
        let mut call = Call {
            shared: self.shared.clone(),
            service,
            method,
            started: Instant::now(),
            span: span.clone(),
            finished: false,
        };
        Box::pin(
            async move {
                let response = inner.call(request).await?;
                if let Some(code) = grpc_code(response.headers()) {
                    // Trailers-only answer (every error before the first message).
                    call.finish(code);
                    return Ok(response);
                }
                Ok(response.map(|body| Body::new(ObservedBody { inner: body, call })))
            }
            .instrument(span),
        )
    }
}

/// A response body that reports the call when its trailers pass.
struct ObservedBody {
    inner: Body,
    call: Call,
}

impl HttpBody for ObservedBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_code) {
                    this.call.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => this.call.finish(Code::Internal),
            // A gRPC body always ends with trailers; one that does not is broken.
            Poll::Ready(None) => this.call.finish(Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
