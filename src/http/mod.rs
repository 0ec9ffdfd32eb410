//! The HTTP edge: one file per route group, handlers only parse and map errors.

pub mod blobs;
pub mod health;

use actix_web::web;

/// Registers every route. `json_limit` is the largest JSON body a PUT may send.
pub fn routes(cfg: &mut web::ServiceConfig, json_limit: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(json_limit)
            .error_handler(move |err, _req| {
                crate::error::ApiError::from_json(&err, json_limit).into()
            }),
    )
    .route("/put/", web::post().to(blobs::put_json))
    .route("/put", web::post().to(blobs::put_json))
    .route("/get/{key:.*}", web::get().to(blobs::get_json))
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .default_service(web::to(no_route));
}

async fn no_route(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    actix_web::HttpResponse::NotFound().json(crate::error::ErrorBody {
        code: "no_route",
        msg: format!("no route for {} {}", req.method(), req.path()),
    })
}
