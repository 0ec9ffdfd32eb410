//! What wraps every request: the request id, its trace span, the access log line and request
//! metrics, and the API key check (or a presigned URL's).

use std::time::Instant;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, web};
use subtle::ConstantTimeEq as _;
use tracing::Instrument as _;

use super::HttpSettings;
use super::presigning::PresignParams;
use super::request_id::request_id;
use crate::config::AccessLog;
use crate::domain::BlobKey;
use crate::http::error::{ApiError, ErrorCode};
use crate::service::BlobService;

const REQUEST_ID: &str = "x-request-id";

/// Takes the caller's `X-Request-Id` (nginx sets one) or makes one, echoes it, runs the
/// request in its trace span (when this process sends traces), records the request's metrics
/// and logs one line for it (as `BLOBPROXY_ACCESS_LOG` says): method, route, status, bytes,
/// latency, request id, replica, and the detail of an error the client is not told. Never
/// bytes of a blob.
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = request_id(req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()));
    let method = method_label(req.method());
    let span = request_span(&req, method);
    let mut res = next.call(req).instrument(span.clone()).await?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut()
            .insert(header::HeaderName::from_static(REQUEST_ID), value);
    }
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16();
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    let latency = started.elapsed();
    crate::metrics::record_request(method, &route, status, latency);
    let error = res
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>());
    if let Some(error) = error {
        crate::metrics::record_error(error.code().as_str());
    }
    let Some(settings) = res.request().app_data::<web::Data<HttpSettings>>() else {
        return Ok(res);
    };
    let logged = match settings.access_log {
        AccessLog::On => true,
        AccessLog::Errors => status >= 400,
        AccessLog::Off => false,
    };
    if !logged {
        return Ok(res);
    }
    let bytes = match res.response().body().size() {
        actix_web::body::BodySize::Sized(n) => n,
        _ => 0,
    };
    // What a client is not told (an S3 client's error dump, a Redis error) is logged here,
    // beside the request id the client got.
    let detail = res
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>())
        .and_then(ApiError::detail)
        .unwrap_or_default();
    tracing::info!(
        target: "blobproxy::access",
        method,
        %route,
        status,
        bytes,
        latency_ms = latency.as_secs_f64() * 1e3,
        %request_id,
        replica = %settings.replica,
        detail,
        "request"
    );
    Ok(res)
}

/// The request's span, when this process sends traces: kept in the request's extensions, so
/// a handler that learns the key from the body can name its shard ([`record_shard`]).
#[derive(Clone)]
struct RequestSpan(tracing::Span);

fn request_span(req: &ServiceRequest, method: &str) -> tracing::Span {
    if !crate::telemetry::tracing_on() {
        return tracing::Span::none();
    }
    let traceparent = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    let route = || {
        req.match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned())
    };
    let span = crate::telemetry::request_span(method, route, traceparent);
    // A request not traced costs nothing more.
    if span.is_none() {
        return span;
    }
    let keyed = ["/blobs/", "/get/", "/remove/", "/history/"];
    if keyed.iter().any(|p| req.path().starts_with(p))
        && let Ok(key) = super::key_from_path(req.path())
        && let Some(service) = req.app_data::<web::Data<BlobService>>()
    {
        span.record("blobproxy.shard", service.shard_of(&key));
    }
    req.extensions_mut().insert(RequestSpan(span.clone()));
    span
}

/// Names the shard of `key` on the request's span (a key read from the body).
pub fn record_shard(req: &HttpRequest, service: &BlobService, key: &BlobKey) {
    if let Some(RequestSpan(span)) = req.extensions().get::<RequestSpan>() {
        span.record("blobproxy.shard", service.shard_of(key));
    }
}

/// The method as a metric label and log field: one of a closed set, whatever a client sends
/// (a label per made-up method grew `/metrics` without bound).
fn method_label(method: &Method) -> &'static str {
    const KNOWN: &[Method] = &[
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::POST,
        Method::DELETE,
        Method::OPTIONS,
        Method::PATCH,
        Method::TRACE,
        Method::CONNECT,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("OTHER", |known| known.as_str())
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Paths that stay open when an API key is set: health for orchestrators, metrics for the
/// scraper, and the API documentation.
fn is_open(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json")
        || path == "/docs"
        || path.starts_with("/docs/")
}

/// With `BLOBPROXY_API_KEY` set, refuses data requests without `Authorization: Bearer <key>`.
/// The comparison takes the same time whatever the key sent, so it leaks nothing. A request on
/// a presigned URL (one with `signature=`) needs no key, but its signature is checked whether
/// or not a key is set: a changed or expired URL is refused either way.
pub async fn require_api_key(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, actix_web::Error> {
    let settings = req.app_data::<web::Data<HttpSettings>>().cloned();
    // Presigned URLs are for what a URL can be signed for: reading or writing `/blobs/<key>`.
    // Other requests are taken as they come (a TRACE still gets its 405).
    let presignable = req.path().starts_with("/blobs/")
        && matches!(*req.method(), Method::GET | Method::HEAD | Method::PUT);
    if let Some(presigned) = PresignParams::of(req.query_string()).filter(|_| presignable) {
        let checked = presigned_request(&req, settings.as_ref().map(|s| s.get_ref()), &presigned);
        return match checked {
            Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
            Err(refused) => {
                let response = HttpResponse::from_error(refused);
                Ok(req.into_response(response).map_into_right_body())
            }
        };
    }
    let expected = settings.and_then(|s| s.api_key.clone());
    if let Some(expected) = expected
        && !is_open(req.path())
    {
        let sent = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .unwrap_or("");
        let ok: bool = sent.as_bytes().ct_eq(expected.as_bytes()).into();
        if !ok {
            let msg = if sent.is_empty() {
                "this endpoint needs Authorization: Bearer <API key>"
            } else {
                "the API key is wrong"
            };
            let response = HttpResponse::from_error(ApiError::new(ErrorCode::Unauthorized, msg));
            return Ok(req.into_response(response).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Whether a request on a presigned URL may go ahead: for the key, method and time the URL
/// was signed for.
fn presigned_request(
    req: &ServiceRequest,
    settings: Option<&HttpSettings>,
    params: &PresignParams,
) -> Result<(), ApiError> {
    let key = super::key_from_path(req.path())?;
    params.check(settings, req.method().as_str(), &key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_come_from_a_closed_set() {
        assert_eq!(method_label(&Method::GET), "GET");
        let made_up = Method::from_bytes(b"FROBNICATE").unwrap();
        assert_eq!(method_label(&made_up), "OTHER");
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
