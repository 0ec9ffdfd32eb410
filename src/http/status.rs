//! For operators: `GET /status` (the drain backlog and the dead letters, as JSON) and
//! `GET /metrics` (Prometheus text).

use actix_web::{HttpResponse, web};

use crate::error::ApiError;
use crate::service::BlobService;

pub async fn status(service: web::Data<BlobService>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(service.status().await?))
}

pub async fn metrics(service: web::Data<BlobService>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::render(&service).await)
}
