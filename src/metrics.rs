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

/// An answer with an error code (`s3_unavailable`, `not_found`...): the codes come from the
/// API's closed table, so the label cannot grow without bound.
pub fn record_error(code: &'static str) {
    metrics::counter!("blobproxy_errors_total", "code" => code).increment(1);
}

pub fn cache_lookup(hit: bool) {
    if hit {
        metrics::counter!("blobproxy_cache_hits_total").increment(1);
    } else {
        metrics::counter!("blobproxy_cache_misses_total").increment(1);
    }
}

/// A read the primary store failed that a mirror store served.
pub fn read_from_mirror(mirror: &str) {
    metrics::counter!("blobproxy_mirror_reads_total", "mirror" => mirror.to_owned()).increment(1);
}

/// How far one mirror store is behind the primary one.
#[derive(Debug, Clone)]
pub struct MirrorFigures {
    pub name: String,
    pub behind: u64,
    /// 0 when caught up.
    pub oldest_behind_secs: f64,
    pub failing: u64,
    pub dead_letters: u64,
}

/// What the whole deployment shares, read from Redis at scrape time.
#[derive(Debug, Clone)]
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
    /// The fullest Redis master's memory, when Redis lets `INFO memory` be read.
    pub redis_memory: Option<RedisMemory>,
    /// Each mirror store's lag.
    pub mirrors: Vec<MirrorFigures>,
}

/// One Redis master's memory use and its limit (`maxmemory`, 0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisMemory {
    pub used_bytes: u64,
    pub max_bytes: u64,
}

/// What this replica's `/readyz` would answer, and which dependency answers.
#[derive(Debug, Clone, Copy)]
pub struct Readiness {
    pub ready: bool,
    pub redis_up: bool,
    pub s3_up: bool,
}

/// The text exposition: this process's metrics, then the deployment-wide gauges and counters
/// (`None` when Redis could not be read).
pub fn render(shared: Option<DeploymentFigures>, readiness: Readiness) -> String {
    let mut out = install().render();
    let flag = |up: bool| if up { 1.0 } else { 0.0 };
    let mut gauge = |name: &str, help: &str, kind: &str, value: f64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    gauge(
        "blobproxy_ready",
        "1 when this replica's /readyz answers 200 (Redis and S3 answer, not shutting down).",
        "gauge",
        flag(readiness.ready),
    );
    gauge(
        "blobproxy_redis_up",
        "1 when this replica's Redis answers PING (every master, on a cluster).",
        "gauge",
        flag(readiness.redis_up),
    );
    gauge(
        "blobproxy_s3_up",
        "1 when this replica's S3 bucket answers.",
        "gauge",
        flag(readiness.s3_up),
    );
    let Some(shared) = shared else {
        out.push_str("# Redis unavailable: deployment-wide metrics omitted\n");
        return out;
    };
    let mut gauge = |name: &str, help: &str, kind: &str, value: f64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    if let Some(memory) = shared.redis_memory {
        gauge(
            "blobproxy_redis_memory_used_bytes",
            "Memory used by the fullest Redis master (the one nearest its maxmemory).",
            "gauge",
            memory.used_bytes as f64,
        );
        gauge(
            "blobproxy_redis_memory_max_bytes",
            "That master's maxmemory (0: no limit set).",
            "gauge",
            memory.max_bytes as f64,
        );
    }
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
    if !shared.mirrors.is_empty() {
        let series = [
            (
                "blobproxy_mirror_behind_keys",
                "Keys whose newest version in the primary store a mirror lacks yet.",
            ),
            (
                "blobproxy_mirror_oldest_behind_seconds",
                "How long the oldest key a mirror lacks has waited (0: caught up).",
            ),
            (
                "blobproxy_mirror_failing_keys",
                "Keys whose last copy to a mirror failed (each retried).",
            ),
            (
                "blobproxy_mirror_dead_letters",
                "Keys a mirror refused for good (parked until replay-dead-letters or a new version).",
            ),
        ];
        for (i, (name, help)) in series.iter().enumerate() {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
            for m in &shared.mirrors {
                let value = [
                    m.behind as f64,
                    m.oldest_behind_secs,
                    m.failing as f64,
                    m.dead_letters as f64,
                ][i];
                out.push_str(&format!("{name}{{mirror=\"{}\"}} {value}\n", m.name));
            }
        }
    }
    out
}
