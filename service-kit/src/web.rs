//! gRPC-web and CORS, so browsers can call the services directly.
//!
//! CORS must be the outermost layer: a rejection made further in (say
//! `UNAUTHENTICATED` from the identity layer) still gets its CORS headers,
//! so the browser lets the page read `grpc-status` instead of reporting an
//! opaque network error.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

/// How long browsers may cache a preflight answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Response headers a gRPC-web client must be able to read.
pub const EXPOSED_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// Why an origin cannot be allowed.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an origin like https://app.example.com (scheme, host, optional port; no path)")]
pub struct BadOrigin(pub String);

/// Parses a comma-separated origin list (`*` allows any origin).
pub fn parse_origins(list: &str) -> Result<Vec<String>, BadOrigin> {
    list.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            let valid = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.split_once("://").is_some_and(|(_, rest)| rest.is_empty() || rest.contains('/'))
                    && HeaderValue::from_str(origin).is_ok());
            if valid { Ok(origin.to_owned()) } else { Err(BadOrigin(origin.to_owned())) }
        })
        .collect()
}

/// The CORS layer for gRPC-web: the given origins (none by default: no
/// cross-origin grants), any request header, the gRPC status headers exposed.
pub fn cors_layer(allowed_origins: &[String]) -> CorsLayer {
    let origin = if allowed_origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(allowed_origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()))
    };
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
        .max_age(PREFLIGHT_MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_a_comma_list_of_scheme_host_port() {
        assert_eq!(
            parse_origins(" http://localhost:5173, https://app.example.com ,").unwrap(),
            vec!["http://localhost:5173", "https://app.example.com"]
        );
        assert_eq!(parse_origins("").unwrap(), Vec::<String>::new());
        assert_eq!(parse_origins("*").unwrap(), vec!["*"]);
    }

    #[test]
    fn paths_and_bare_hosts_are_not_origins() {
        for bad in ["localhost:3000", "https://app.example.com/", "https://a.example/x", "ftp://x", "https://"] {
            assert!(parse_origins(bad).is_err(), "{bad}");
        }
    }
}
