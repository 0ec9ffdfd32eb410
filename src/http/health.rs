//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: Redis and S3 answer).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::service::BlobService;

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: 200 when Redis and S3 answer, else 503 naming what is down.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready"), (status = 503, description = "A dependency is down", body = crate::error::ErrorBody)))]
pub async fn readyz(service: web::Data<BlobService>) -> HttpResponse {
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
