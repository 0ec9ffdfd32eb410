//! For operators: `GET /status` (the drain backlog and the dead letters, as JSON) and
//! `GET /metrics` (Prometheus text).

use actix_web::{HttpResponse, web};

use crate::http::error::ApiError;
use std::sync::atomic::Ordering;

use super::HttpSettings;
use crate::metrics::{DeploymentFigures, MirrorFigures, Readiness, RedisMemory};
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
pub async fn metrics(
    service: web::Data<BlobService>,
    settings: web::Data<HttpSettings>,
) -> HttpResponse {
    let shared = async {
        let (status, stats) = tokio::try_join!(service.status(), service.drain_stats()).ok()?;
        let memory = service.redis_memory().await;
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
            mirrors: status
                .mirrors
                .iter()
                .map(|m| MirrorFigures {
                    name: m.name.clone(),
                    behind: m.behind,
                    oldest_behind_secs: m.oldest_behind_secs.unwrap_or(0.0),
                    failing: m.failing,
                    dead_letters: m.dead_letters,
                })
                .collect(),
            redis_memory: memory.map(|m| RedisMemory {
                used_bytes: m.used_bytes,
                max_bytes: m.max_bytes,
            }),
        })
    };
    let (shared, down) = tokio::join!(shared, service.unready_dependencies());
    let up = |name: &str| !down.iter().any(|(n, _)| *n == name);
    let readiness = Readiness {
        ready: down.is_empty() && !settings.stopping.load(Ordering::Relaxed),
        redis_up: up("Redis"),
        s3_up: up("S3"),
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::render(shared, readiness))
}
