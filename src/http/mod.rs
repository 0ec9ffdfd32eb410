//! The HTTP edge: routes, extractors and errors to JSON. Handlers parse, call the service and
//! map its errors; nothing here reaches below the service.
//!
//! - [`json`]: the JSON API (`/put/`, `/get/`, deletes); [`raw`]: bytes in, bytes out, with
//!   [`range`] for ETags and ranges; [`write`]: what both kinds of write share; [`body`]:
//!   reading a raw body within limits; [`listing`]: `GET /blobs`; [`history`]: a key's versions.
//! - [`health`], [`status`]: for orchestrators and operators; [`openapi`]: the document.
//! - [`middleware`]: request ids ([`request_id`]), the access log, the API key; [`cors`]: calls
//!   from pages on other origins; [`presigning`]: URLs for one key that need no API key.

mod body;
pub mod cors;

pub use body::BodyTimeouts;
pub mod error;
pub mod health;
pub mod history;
pub mod json;
pub mod listing;
pub mod middleware;
pub mod openapi;
pub mod presigning;
pub mod range;
pub mod raw;
mod request_id;
pub mod status;
mod wire;

pub use wire::JsonProtocolErrors;
mod write;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::domain::BlobKey;
use crate::domain::presigned::Presigner;
use crate::http::error::{ApiError, ErrorCode};

/// What the handlers and middleware need besides the service.
#[derive(Clone)]
pub struct HttpSettings {
    /// Largest JSON body a PUT may send.
    pub json_limit: usize,
    /// How long `?wc=1` waits for S3.
    pub wc_timeout: Duration,
    /// This replica's name, for `X-Served-By` and the access log.
    pub replica: String,
    /// Required bearer token of data endpoints, when set.
    pub api_key: Option<String>,
    /// Set once a shutdown has begun: `/readyz` then answers 503.
    pub stopping: Arc<AtomicBool>,
    /// How long a write's body may take to arrive.
    pub body_timeouts: BodyTimeouts,
    /// Which requests get an access log line.
    pub access_log: crate::config::AccessLog,
    /// Origins whose pages may call the API, when any.
    pub cors: Option<cors::CorsPolicy>,
    /// Signs and checks presigned URLs, when the deployment has a presign secret.
    pub presigner: Option<Presigner>,
    /// Where clients reach the service, the start of presigned URLs (else each request's host).
    pub public_url: Option<String>,
}

impl HttpSettings {
    /// What the replica's handlers take of `settings`.
    pub fn new(settings: &crate::config::Settings) -> anyhow::Result<Self> {
        Ok(HttpSettings {
            // Room for the base64 of the largest blob plus the key and field names.
            json_limit: crate::domain::base64_len(settings.server.max_blob_bytes) + 16 * 1024,
            wc_timeout: settings.server.wc_timeout,
            replica: settings.replica(),
            api_key: settings.api_key()?,
            stopping: Arc::new(AtomicBool::new(false)),
            body_timeouts: BodyTimeouts {
                total: settings.server.body_timeout,
                idle: settings.server.body_idle,
            },
            access_log: settings.ops.access_log,
            cors: cors::CorsPolicy::new(&settings.browser.cors_origins),
            presigner: settings
                .browser
                .presign_secret()?
                .map(|s| Presigner::new(&s)),
            public_url: settings.browser.public_url.clone(),
        })
    }
}

/// Registers every route; expects `web::Data<HttpSettings>` and the service in the app data.
/// `secured`: an API key is set (the OpenAPI document then declares it).
pub fn routes(cfg: &mut web::ServiceConfig, secured: bool) {
    cfg.app_data(web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::new(
            ErrorCode::InvalidQuery,
            format!("invalid query string: {err}"),
        )
        .into()
    }))
    // Each path is one resource with its methods inside, so a method it does not take gets a
    // JSON 405 naming those it does. Fixed paths go first: actix tries resources in order, and
    // every `{key:.*}` pattern is a regex.
    .service(only("/put/", "POST", web::post().to(json::put_json)))
    .service(only("/put", "POST", web::post().to(json::put_json)))
    .service(only(
        "/presign",
        "POST",
        web::post().to(presigning::presign),
    ))
    .service(only("/blobs", "GET, HEAD", read().to(listing::list)))
    .service(only("/status", "GET, HEAD", read().to(status::status)))
    .service(only("/metrics", "GET, HEAD", read().to(status::metrics)))
    .service(only("/healthz", "GET, HEAD", read().to(health::healthz)))
    .service(only("/readyz", "GET, HEAD", read().to(health::readyz)))
    .service(
        web::resource("/blobs/{key:.*}")
            .route(web::put().to(raw::put))
            .route(read().to(raw::get))
            .route(web::delete().to(json::delete))
            .default_service(web::to(|req| {
                method_not_allowed(req, "GET, HEAD, PUT, DELETE")
            })),
    )
    .service(only(
        "/history/{key:.*}",
        "GET, HEAD",
        read().to(history::history),
    ))
    .service(only(
        "/get/{key:.*}",
        "GET, HEAD",
        read().to(json::get_json),
    ))
    .service(only("/remove/{key:.*}", "GET", web::get().to(json::remove)))
    .configure(|cfg| openapi::routes(cfg, secured))
    .default_service(web::to(no_route));
}

/// A path that takes the methods of `route` only (`allowed` names them); any other gets 405.
fn only(path: &str, allowed: &'static str, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path)
        .route(route)
        .default_service(web::to(move |req| method_not_allowed(req, allowed)))
}

/// A read: GET, or HEAD (the same answer without its body, which actix leaves out).
fn read() -> actix_web::Route {
    use actix_web::guard;
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// The key of a keyed path (`/get/<key>`, `/blobs/<key>`, `/remove/<key>`): the rest of the raw
/// path after its first segment, percent-decoded, so keys may hold `/`, `?` or `%`.
pub struct KeyPath(pub BlobKey);

impl actix_web::FromRequest for KeyPath {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(key_from_path(req.uri().path()).map(KeyPath))
    }
}

pub fn key_from_path(path: &str) -> Result<BlobKey, ApiError> {
    let raw = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .map_or("", |(_, rest)| rest);
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidKey,
                "invalid key: the key is not valid UTF-8",
            )
        })?;
    Ok(BlobKey::parse(decoded.into_owned())?)
}

async fn method_not_allowed(
    req: HttpRequest,
    allowed: &'static str,
) -> Result<HttpResponse, ApiError> {
    Err(ApiError::method_not_allowed(
        req.method().as_str(),
        req.path(),
        allowed,
    ))
}

async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorCode::NoRoute,
        format!("no route for {} {}", req.method(), req.path()),
    ))
}

#[cfg(test)]
mod tests {
    use super::key_from_path;

    #[test]
    fn the_key_is_the_percent_decoded_rest_of_the_path() {
        assert_eq!(key_from_path("/get/a/b").unwrap().as_str(), "a/b");
        assert_eq!(key_from_path("/blobs/a%3Fb%25").unwrap().as_str(), "a?b%");
        assert!(key_from_path("/get/").is_err());
        assert!(key_from_path("/get/%FF").is_err());
    }
}
