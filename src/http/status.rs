//! For operators: `GET /status` (the drain backlog and the dead letters, as JSON) and
//! `GET /metrics` (Prometheus text).

use actix_web::{HttpResponse, web};

use crate::http::error::ApiError;
use crate::metrics::DeploymentFigures;
use crate::service::BlobService;

/// The drain backlog and the dead letters.
#[utoipa::path(get, path = "/status", tag = "operations",
    responses((status = 200, description = "Backlog", body = crate::service::Status)),
    security(("api_key" = [])))]
pub async fn status(service: web::Data<BlobService>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(service.status().await?))
}

/// Prometheus metrics (text exposition format). Open without an API key.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics", content_type = "text/plain", body = String)))]
pub async fn metrics(service: web::Data<BlobService>) -> HttpResponse {
    let shared = async {
        let (status, stats) = tokio::try_join!(service.status(), service.drain_stats()).ok()?;
        Some(DeploymentFigures {
            queued_jobs: status.queued_jobs,
            dirty: status.dirty,
            oldest_dirty_age_secs: status.oldest_dirty_age_secs,
            dead_letters: status.dead_letters,
            failing_keys: status.failing_keys,
            failing_for_secs: status.failing_for_secs,
            uploads: stats.uploads,
            upload_failures: stats.upload_failures,
            orphans: stats.orphans,
        })
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::render(shared.await))
}
