//! Logs and traces.
//!
//! Logging: JSON lines when stdout is not a terminal (containers, files), readable text on a
//! terminal. `RUST_LOG` picks the levels (default `info`). Lines go through a buffer to a
//! thread of their own, so a thread serving requests never waits on stdout (a line is dropped,
//! not waited for, if 128k lines are ever pending).
//!
//! Traces (`BLOBPROXY_OTLP_ENDPOINT`): the code's own spans (a request, the service, Redis and
//! S3 calls, a drain) go to an OpenTelemetry collector over OTLP/HTTP, batched by the SDK on a
//! thread of its own. A request continues its caller's trace (W3C `traceparent`); a write
//! records its span's context with the blob, and the drain that uploads the blob links to it,
//! so one trace leads from a PUT to its upload in S3. Off, none of this runs.

use std::io::IsTerminal as _;
use std::sync::OnceLock;

use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTo {
    Stdout,
    /// For a command whose standard output is its result (`dead-letters export`).
    Stderr,
}

/// Where traces go, and who sends them.
#[derive(Debug, Clone)]
pub struct TraceTo {
    /// The collector's OTLP/HTTP address (`http://collector:4318`).
    pub endpoint: String,
    /// The share of new traces kept (a caller's sampled trace is always continued).
    pub sample_ratio: f64,
    /// `serve`, `worker`, `all`: the process's part, on every span.
    pub role: &'static str,
    /// The replica or host name (`service.instance.id`).
    pub instance: String,
}

/// Keeps logging and tracing running; drop it at exit (it flushes both).
pub struct Telemetry {
    _logs: WorkerGuard,
    traces: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(traces) = self.traces.take() {
            // Sends what is batched. On a thread of its own: the exporter's blocking HTTP
            // client may not run on an async runtime's thread.
            let _ = std::thread::spawn(move || traces.shutdown()).join();
        }
    }
}

/// The share of new traces kept, when this process sends traces.
static SAMPLE_RATIO: OnceLock<Option<f64>> = OnceLock::new();

/// Whether this process sends traces.
pub fn tracing_on() -> bool {
    SAMPLE_RATIO.get().copied().flatten().is_some()
}

/// Whether a new trace is kept (`BLOBPROXY_OTLP_SAMPLE_RATIO`).
fn keep_new_trace() -> bool {
    let ratio = SAMPLE_RATIO.get().copied().flatten().unwrap_or(0.0);
    ratio >= 1.0 || rand::random::<f64>() < ratio
}

/// The spans a trace may start with (made only for a trace that is kept); every other span
/// of the code is traced only inside one of them. So a request not sampled costs no tracing
/// work beyond the decision: its spans are never handed to the exporter's layer.
const TRACE_ROOTS: &[&str] = &["request", "work"];

/// Starts logging, and tracing when `traces` says where to. Keep the guard until the process
/// ends.
pub fn init(to: LogTo, traces: Option<TraceTo>) -> anyhow::Result<Telemetry> {
    let (writer, guard) = match to {
        LogTo::Stdout => tracing_appender::non_blocking(std::io::stdout()),
        LogTo::Stderr => tracing_appender::non_blocking(std::io::stderr()),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer().with_writer(writer);
    let lines = if std::io::stdout().is_terminal() {
        lines.boxed()
    } else {
        lines.json().with_current_span(false).boxed()
    };
    let ratio = traces.as_ref().map(|t| t.sample_ratio);
    let provider = traces.map(tracer_provider).transpose()?;
    // Only the code's own spans (not its log events: they are lines; nor the SDKs' spans), and
    // only inside a kept trace: a root, or a span whose parent the layer traces.
    let spans = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("blobproxy"))
            // No busy/idle timing, thread or source location per span: clock reads and
            // strings on every span, which the span names and timestamps make redundant.
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_filter(tracing_subscriber::filter::dynamic_filter_fn(|meta, cx| {
                meta.is_span()
                    && meta.target().starts_with("blobproxy")
                    && (TRACE_ROOTS.contains(&meta.name()) || cx.lookup_current().is_some())
            }))
    });
    // A second init (tests start several apps in one process) is harmless: keep the first.
    let _ = tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(spans)
        .try_init();
    let _ = SAMPLE_RATIO.set(ratio);
    Ok(Telemetry {
        _logs: guard,
        traces: provider,
    })
}

fn tracer_provider(to: TraceTo) -> anyhow::Result<SdkTracerProvider> {
    let base = to.endpoint.trim_end_matches('/');
    let endpoint = if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    };
    // Built on a thread of its own, for the blocking HTTP client's sake (see Drop above).
    std::thread::spawn(move || {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .build()?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name("blobproxy")
            .with_attributes([
                opentelemetry::KeyValue::new("service.instance.id", to.instance),
                opentelemetry::KeyValue::new("blobproxy.role", to.role),
                opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            ])
            .build();
        // Whether a trace is kept is decided where it starts (request_span, work_span), so
        // that a trace not kept makes no spans at all; the SDK keeps what it is given.
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::AlwaysOn)
            .with_resource(resource)
            .build())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("building the OTLP exporter panicked"))?
}

/// One `traceparent` value as a propagator's carrier.
struct TraceParent<'a>(&'a str);

impl Extractor for TraceParent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

fn context_of(traceparent: &str) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&TraceParent(traceparent))
}

/// The span of one HTTP request (`method` on the route template `route`), in the trace of
/// its caller's `traceparent` when it sent one. `Span::none()` when tracing is off or the
/// request is not traced: its caller's trace is not sampled, or (without one) the sample
/// ratio left it out.
pub fn request_span(
    method: &str,
    route: impl FnOnce() -> String,
    traceparent: Option<&str>,
) -> tracing::Span {
    if !tracing_on() {
        return tracing::Span::none();
    }
    let parent = traceparent.map(context_of);
    let kept = match &parent {
        Some(parent) if parent.span().span_context().is_valid() => {
            parent.span().span_context().is_sampled()
        }
        _ => keep_new_trace(),
    };
    if !kept {
        return tracing::Span::none();
    }
    let route = route();
    let route = route.as_str();
    let span = tracing::debug_span!(
        target: "blobproxy::http",
        "request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        blobproxy.shard = tracing::field::Empty,
    );
    if let Some(parent) = parent {
        let _ = span.set_parent(parent);
    }
    span
}

/// The span of one unit of a worker's work (`name`: `drain`, `mirror.copy`) on `key`, linked
/// to the write that queued it when `queued_by` names that write's span: the work is traced
/// whenever the write was, else as the sample ratio says. `Span::none()` when not traced.
pub fn work_span(name: &'static str, key: &str, queued_by: Option<&str>) -> tracing::Span {
    if !tracing_on() {
        return tracing::Span::none();
    }
    let linked = queued_by
        .map(|traceparent| context_of(traceparent).span().span_context().clone())
        .filter(|linked| linked.is_valid() && linked.is_sampled());
    if linked.is_none() && !keep_new_trace() {
        return tracing::Span::none();
    }
    let span = tracing::debug_span!(
        target: "blobproxy::jobs",
        "work",
        otel.name = name,
        otel.kind = "consumer",
        key,
    );
    if let Some(linked) = linked {
        span.add_link(linked);
    }
    span
}

/// The W3C `traceparent` of the current span, when it is traced and sampled: what a write
/// records with its blob, for the drain to link to.
pub fn current_traceparent() -> Option<String> {
    if !tracing_on() {
        return None;
    }
    let context = tracing::Span::current().context();
    let span = context.span();
    let span = span.span_context();
    (span.is_valid() && span.is_sampled()).then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span.trace_id(),
            span.span_id(),
            span.trace_flags().to_u8()
        )
    })
}
