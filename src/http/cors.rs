//! CORS (`BLOBPROXY_CORS_ORIGINS`): which pages on other origins may call the API. A preflight
//! from a listed origin is answered here, before the API key is asked for (browsers send none
//! with it); every other answer to a listed origin, errors included, carries the headers that
//! let its page read it.
//!
//! Written here rather than with actix-cors: that crate answers every request from an origin
//! not on its list with a plain-text 400, where blobproxy serves it as any request (a browser
//! then withholds the answer from the page; curl and servers, which send `Origin` too, are not
//! refused) and keeps every error JSON.

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

use super::HttpSettings;
use crate::http::error::{ApiError, ErrorCode};

/// The methods the API takes.
const METHODS: &str = "GET, HEAD, PUT, POST, DELETE";
/// What a page may read of an answer besides the CORS-safelisted headers.
const EXPOSED: &str = "ETag, Content-Length, Content-Range, Accept-Ranges, Location, \
    X-Request-Id, X-Served-By, X-Blob-Version, X-Blob-Extension, X-Blob-Store, \
    Idempotent-Replayed, WWW-Authenticate, Allow";
/// How long a browser may reuse a preflight's answer (seconds).
const PREFLIGHT_MAX_AGE: &str = "3600";

/// The origins that may call the API.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    any: bool,
    origins: Vec<String>,
}

impl CorsPolicy {
    /// From `BLOBPROXY_CORS_ORIGINS`; `None` when it lists none (no CORS headers at all).
    pub fn new(origins: &[String]) -> Option<Self> {
        let origins: Vec<String> = origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        (!origins.is_empty()).then(|| CorsPolicy {
            any: origins.iter().any(|o| o == "*"),
            origins,
        })
    }

    /// Browsers send the origin as `scheme://host[:port]`, lower case; compared as sent.
    fn allows(&self, origin: &str) -> bool {
        self.any || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// The headers every answer to `origin` carries.
    fn add_headers(&self, headers: &mut HeaderMap, origin: &HeaderValue) {
        let allowed = if self.any {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED),
        );
    }
}

/// Answers preflights and adds the CORS headers to answers for a listed origin.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, actix_web::Error> {
    let policy = req
        .app_data::<web::Data<HttpSettings>>()
        .and_then(|s| s.cors.clone());
    let origin = req.headers().get(header::ORIGIN).cloned();
    let (Some(policy), Some(origin)) = (policy, origin) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let allowed = origin.to_str().is_ok_and(|o| policy.allows(o));
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let response = if allowed {
            let mut response = HttpResponse::build(StatusCode::NO_CONTENT);
            response
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, METHODS))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE));
            // The headers the page will send (Authorization, Content-Type, Idempotency-Key,
            // Range...): any may be sent, so name back those it asks for.
            if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                response.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone()));
            }
            let mut response = response.finish();
            policy.add_headers(response.headers_mut(), &origin);
            response
        } else {
            let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
            HttpResponse::from_error(ApiError::new(
                ErrorCode::OriginNotAllowed,
                format!("pages from {origin} may not call this API (BLOBPROXY_CORS_ORIGINS)"),
            ))
        };
        let mut response = req.into_response(response);
        vary_on_origin(response.headers_mut());
        return Ok(response.map_into_right_body());
    }
    let mut response = next.call(req).await?;
    if allowed {
        policy.add_headers(response.headers_mut(), &origin);
    }
    vary_on_origin(response.headers_mut());
    Ok(response.map_into_left_body())
}

/// The answer depends on the `Origin` sent: a cache must not give one origin's to another.
fn vary_on_origin(headers: &mut HeaderMap) {
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}
