//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: Redis and S3 answer).

use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::HttpSettings;
use crate::service::BlobService;

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: 200 when Redis and S3 answer, else 503 naming what is down; 503 as well once the
/// replica is shutting down (it still serves for `BLOBPROXY_SHUTDOWN_DELAY_SECS`).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready"), (status = 503, description = "A dependency is down (not_ready), or the replica is shutting down (shutting_down)", body = crate::error::ErrorBody)))]
pub async fn readyz(
    service: web::Data<BlobService>,
    settings: web::Data<HttpSettings>,
) -> HttpResponse {
    if settings.stopping.load(Ordering::Relaxed) {
        return HttpResponse::ServiceUnavailable().json(json!({
            "code": "shutting_down",
            "msg": "this replica is shutting down; it serves in-flight and late requests meanwhile",
        }));
    }
    let (redis, s3) = tokio::join!(service.cache.ping(), service.store.ping());
    let down: Vec<String> = [
        ("redis", redis.err().map(|e| e.to_string())),
        ("s3", s3.err().map(|e| e.to_string())),
    ]
    .into_iter()
    .filter_map(|(name, err)| err.map(|e| format!("{name}: {e}")))
    .collect();
    if down.is_empty() {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({
            "code": "not_ready",
            "msg": format!("not ready: {}", down.join("; ")),
        }))
    }
}
