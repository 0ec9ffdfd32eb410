//! Prometheus metrics at `GET /metrics`.
//!
//! Two kinds: what this process saw (requests by route and status, latency histograms, cache
//! hits and misses), kept by the `metrics` recorder; and what the whole deployment shares
//! (queue depth, dirty blobs, oldest dirty age, dead letters, uploads and failures counted by
//! every worker), read from Redis at scrape time so any replica reports them. A leaf: it takes
//! plain figures and imports nothing of the crate.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the process-wide recorder once; later calls return the same handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .expect("valid buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed; then ours just stays unused.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

pub fn record_request(method: &str, route: &str, status: u16, latency: Duration) {
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(latency.as_secs_f64());
}

pub fn cache_lookup(hit: bool) {
    if hit {
        metrics::counter!("blobproxy_cache_hits_total").increment(1);
    } else {
        metrics::counter!("blobproxy_cache_misses_total").increment(1);
    }
}

/// What the whole deployment shares, read from Redis at scrape time.
#[derive(Debug, Clone, Copy)]
pub struct DeploymentFigures {
    pub queued_jobs: u64,
    pub dirty: u64,
    pub oldest_dirty_age_secs: Option<f64>,
    pub dead_letters: u64,
    pub failing_keys: u64,
    pub failing_for_secs: Option<f64>,
    pub uploads: u64,
    pub upload_failures: u64,
    pub orphans: u64,
}

/// The text exposition: this process's metrics, then the deployment-wide gauges and counters
/// (`None` when Redis could not be read).
pub fn render(shared: Option<DeploymentFigures>) -> String {
    let mut out = install().render();
    let Some(shared) = shared else {
        out.push_str("# Redis unavailable: deployment-wide metrics omitted\n");
        return out;
    };
    let mut gauge = |name: &str, help: &str, kind: &str, value: f64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    gauge(
        "blobproxy_queue_depth",
        "Drain jobs waiting to run.",
        "gauge",
        shared.queued_jobs as f64,
    );
    gauge(
        "blobproxy_dirty_blobs",
        "Writes (and deletes) not yet in S3.",
        "gauge",
        shared.dirty as f64,
    );
    gauge(
        "blobproxy_oldest_dirty_age_seconds",
        "How long the oldest write not yet in S3 has waited.",
        "gauge",
        shared.oldest_dirty_age_secs.unwrap_or(0.0),
    );
    gauge(
        "blobproxy_dead_letters",
        "Keys S3 refused permanently.",
        "gauge",
        shared.dead_letters as f64,
    );
    gauge(
        "blobproxy_failing_keys",
        "Keys S3 keeps failing for, each waiting for its next attempt.",
        "gauge",
        shared.failing_keys as f64,
    );
    gauge(
        "blobproxy_oldest_failing_key_age_seconds",
        "How long the longest-failing key has failed (0: none is failing).",
        "gauge",
        shared.failing_for_secs.unwrap_or(0.0),
    );
    gauge(
        "blobproxy_uploads_total",
        "Blobs stored in S3 by all workers.",
        "counter",
        shared.uploads as f64,
    );
    gauge(
        "blobproxy_upload_failures_total",
        "Failed S3 writes (each retried) by all workers.",
        "counter",
        shared.upload_failures as f64,
    );
    gauge(
        "blobproxy_orphaned_keys_total",
        "Dirty keys the workers' sweep found with no job on its way (a lost job, a dead worker) and drained itself.",
        "counter",
        shared.orphans as f64,
    );
    out
}
