//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: Redis and S3 answer).

use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::HttpSettings;
use crate::http::error::{ApiError, ErrorCode};
use crate::service::BlobService;

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: 200 when Redis and S3 answer, else 503 naming what is down; 503 as well once the
/// replica is shutting down (it still serves for `BLOBPROXY_SHUTDOWN_DELAY_SECS`).
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Ready")))]
pub async fn readyz(
    service: web::Data<BlobService>,
    settings: web::Data<HttpSettings>,
) -> Result<HttpResponse, ApiError> {
    if settings.stopping.load(Ordering::Relaxed) {
        return Err(ApiError::new(
            ErrorCode::ShuttingDown,
            "this replica is shutting down; it serves in-flight and late requests meanwhile",
        ));
    }
    let down = service.unready_dependencies().await;
    if !down.is_empty() {
        let names: Vec<&str> = down.iter().map(|(name, _)| *name).collect();
        let causes: Vec<String> = down.iter().map(|(n, e)| format!("{n}: {e}")).collect();
        return Err(ApiError::hiding(
            ErrorCode::NotReady,
            format!("not ready: {} does not answer", names.join(" and ")),
            causes.join("; "),
        ));
    }
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}
