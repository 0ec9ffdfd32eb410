//! The HTTP edge: one file per route group; handlers only parse and map errors.

pub mod blobs;
mod body;
pub mod health;
pub mod middleware;
pub mod openapi;
pub mod raw;
pub mod status;

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
    .route("/put/", web::post().to(blobs::put_json))
    .route("/put", web::post().to(blobs::put_json))
    .route("/get/{key:.*}", web::get().to(blobs::get_json))
    .route("/remove/{key:.*}", web::get().to(blobs::remove))
    .route("/blobs/{key:.*}", web::delete().to(blobs::delete))
    .route("/blobs/{key:.*}", web::put().to(raw::put))
    .route("/blobs/{key:.*}", web::get().to(raw::get))
    .route("/blobs/{key:.*}", web::head().to(raw::get))
    .route("/blobs", web::get().to(blobs::list))
    .route("/status", web::get().to(status::status))
    .route("/metrics", web::get().to(status::metrics))
    .configure(openapi::routes)
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .default_service(web::to(no_route));
}

async fn no_route(req: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound().json(ErrorBody {
        code: "no_route",
        msg: format!("no route for {} {}", req.method(), req.path()),
    })
}
