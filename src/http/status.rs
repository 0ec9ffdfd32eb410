//! For operators: `GET /status` (the drain backlog and the dead letters, as JSON) and
//! `GET /metrics` (Prometheus text).

use actix_web::{HttpResponse, web};

use crate::error::{ApiError, ErrorBody};
use crate::service::BlobService;

/// The drain backlog and the dead letters.
#[utoipa::path(get, path = "/status", tag = "operations",
    responses((status = 200, description = "Backlog", body = crate::service::Status), (status = 401, description = "API key missing or wrong (when BLOBPROXY_API_KEY is set)", body = ErrorBody), (status = 503, description = "Redis or S3 unavailable, or Redis full (Retry-After is set)", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn status(service: web::Data<BlobService>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(service.status().await?))
}

/// Prometheus metrics (text exposition format). Open without an API key.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics", content_type = "text/plain", body = String)))]
pub async fn metrics(service: web::Data<BlobService>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::render(&service).await)
}
