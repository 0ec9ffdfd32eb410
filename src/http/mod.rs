//! The HTTP edge: one file per route group; handlers only parse and map errors.

pub mod blobs;
mod body;
pub mod health;
pub mod middleware;
pub mod openapi;
pub mod raw;
pub mod status;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::{ApiError, ErrorBody};

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
}

/// Registers every route; expects `web::Data<HttpSettings>` and the service in the app data.
/// `json_limit` is the largest JSON body a PUT may send.
pub fn routes(cfg: &mut web::ServiceConfig, json_limit: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(json_limit)
            .error_handler(move |err, _req| ApiError::from_json(&err, json_limit).into()),
    )
    .app_data(web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::InvalidQuery(format!("invalid query string: {err}")).into()
    }))
    // Each keyed path is one resource with its methods inside, so a method it does not take
    // gets a JSON 405 naming those it does (a `.route` per method made a resource per method,
    // and such a request fell through to `no_route`). Fixed paths go first: actix tries
    // resources in order, and every `{key:.*}` pattern is a regex.
    .route("/put/", web::post().to(blobs::put_json))
    .route("/put", web::post().to(blobs::put_json))
    .route("/blobs", web::get().to(blobs::list))
    .route("/status", web::get().to(status::status))
    .route("/metrics", web::get().to(status::metrics))
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .service(
        web::resource("/blobs/{key:.*}")
            .route(web::put().to(raw::put))
            .route(web::get().to(raw::get))
            .route(web::head().to(raw::get))
            .route(web::delete().to(blobs::delete))
            .default_service(web::to(|req| {
                method_not_allowed(req, "GET, HEAD, PUT, DELETE")
            })),
    )
    .service(
        web::resource("/get/{key:.*}")
            .route(web::get().to(blobs::get_json))
            .default_service(web::to(|req| method_not_allowed(req, "GET"))),
    )
    .service(
        web::resource("/remove/{key:.*}")
            .route(web::get().to(blobs::remove))
            .default_service(web::to(|req| method_not_allowed(req, "GET"))),
    )
    .configure(openapi::routes)
    .default_service(web::to(no_route));
}

async fn method_not_allowed(req: HttpRequest, allowed: &'static str) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((actix_web::http::header::ALLOW, allowed))
        .json(ErrorBody {
            code: "method_not_allowed",
            msg: format!(
                "{} is not allowed on {}; use {allowed}",
                req.method(),
                req.path()
            ),
        })
}

async fn no_route(req: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound().json(ErrorBody {
        code: "no_route",
        msg: format!("no route for {} {}", req.method(), req.path()),
    })
}
