//! Traces over OTLP: a replica and a worker (real processes) send their spans to a receiver
//! this test runs, which decodes them with the protocol's own message types. One trace leads
//! from the client's request through the replica's Redis write to the worker's upload to S3.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

use crate::helpers::*;

/// A span as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: BTreeMap<String, String>,
    /// (trace id, span id) of each link.
    links: Vec<(String, String)>,
    /// The sending process's `blobproxy.role`.
    role: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(pairs: &[KeyValue]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

/// An OTLP/HTTP receiver on a free loopback port: `POST /v1/traces` with a protobuf
/// `ExportTraceServiceRequest`, answered 200 with an empty (valid) response.
/// Returns its address, the spans it got, and the header lines of the exports.
async fn start_receiver() -> (String, Arc<Mutex<Vec<Received>>>, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", free_port()))
        .await
        .unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let spans = Arc::new(Mutex::new(Vec::new()));
    let headers = Arc::new(Mutex::new(Vec::new()));
    let (received, seen_headers) = (spans.clone(), headers.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (received, seen_headers) = (received.clone(), seen_headers.clone());
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    let mut path = String::new();
                    loop {
                        let mut line = String::new();
                        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if path.is_empty() {
                            path = line.split(' ').nth(1).unwrap_or_default().to_owned();
                        } else {
                            seen_headers.lock().unwrap().push(line.to_ascii_lowercase());
                        }
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0u8; length];
                    stream.read_exact(&mut body).await.unwrap();
                    assert_eq!(path, "/v1/traces", "the exporter posted elsewhere");
                    let request = ExportTraceServiceRequest::decode(&body[..]).unwrap();
                    let mut got = Vec::new();
                    for resource in request.resource_spans {
                        let role = resource
                            .resource
                            .map(|r| attributes(&r.attributes))
                            .and_then(|a| a.get("blobproxy.role").cloned())
                            .unwrap_or_default();
                        for scope in resource.scope_spans {
                            for span in scope.spans {
                                got.push(Received {
                                    name: span.name,
                                    trace_id: hex(&span.trace_id),
                                    span_id: hex(&span.span_id),
                                    parent: hex(&span.parent_span_id),
                                    attributes: attributes(&span.attributes),
                                    links: span
                                        .links
                                        .iter()
                                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                                        .collect(),
                                    role: role.clone(),
                                });
                            }
                        }
                    }
                    received.lock().unwrap().extend(got);
                    let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
                    if stream.get_mut().write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (address, spans, headers)
}

/// Whether `span` descends from the span `ancestor` among `all`.
fn descends_from(all: &[Received], span: &Received, ancestor: &str) -> bool {
    let mut parent = span.parent.clone();
    for _ in 0..16 {
        if parent == ancestor {
            return true;
        }
        match all.iter().find(|s| s.span_id == parent) {
            Some(up) => parent = up.parent.clone(),
            None => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_trace_leads_from_a_put_through_redis_to_the_workers_upload_to_s3() {
    let backends = Backends::start().await;
    let (collector, spans, headers) = start_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("BLOBPROXY_OTLP_ENDPOINT", collector.clone()),
        // The SDK's batch delay (5 s by default), shortened so the test waits less.
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
        // What a collector that wants a key gets: the SDK's own variable.
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-collector-key=sesame".to_owned(),
        ),
    ];
    let (_web, base) = spawn_serve(&backends, &env, &dir.path().join("web.log")).await;
    let _worker =
        BlobproxyProcess::spawn(&["worker"], &backends, &env, &dir.path().join("worker.log"));

    // The client's own trace: the replica continues it.
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let http = reqwest::Client::new();
    let put = http
        .put(format!("{base}/blobs/traced/photo"))
        .header("traceparent", format!("00-{client_trace}-{client_span}-01"))
        .body("traced bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let missing = http
        .get(format!("{base}/get/traced/never"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    backends.wait_until_drained(Duration::from_secs(20)).await;

    let all = eventually(
        Duration::from_secs(30),
        "the drain's spans to arrive",
        || {
            let spans = spans.clone();
            async move {
                let all = spans.lock().unwrap().clone();
                all.iter()
                    .any(|s| s.name == "s3.put_object" && s.role == "worker")
                    .then_some(all)
            }
        },
    )
    .await;
    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    assert!(
        headers
            .lock()
            .unwrap()
            .iter()
            .any(|h| h == "x-collector-key: sesame"),
        "OTEL_EXPORTER_OTLP_HEADERS was not sent"
    );

    // The request: a child of the client's span, in its trace, with its route, status, shard.
    let request = all
        .iter()
        .find(|s| s.name == "PUT /blobs/{key:.*}")
        .unwrap_or_else(|| panic!("no span of the PUT; got {names:?}"));
    assert_eq!(request.trace_id, client_trace);
    assert_eq!(request.parent, client_span);
    assert_eq!(request.role, "serve");
    assert_eq!(request.attributes["http.response.status_code"], "201");
    assert_eq!(request.attributes["http.route"], "/blobs/{key:.*}");
    assert_eq!(request.attributes["blobproxy.shard"], "0");

    // Its Redis write, below it.
    let write = all
        .iter()
        .find(|s| s.name == "redis.put" && s.trace_id == client_trace)
        .unwrap_or_else(|| panic!("no redis.put in the PUT's trace; got {names:?}"));
    assert!(descends_from(&all, write, &request.span_id), "{write:?}");

    // The worker's drain of that blob links to the write, and its S3 upload is its child.
    let drain = all
        .iter()
        .find(|s| s.name == "drain" && s.role == "worker" && s.attributes["key"] == "traced/photo")
        .unwrap_or_else(|| panic!("no drain span; got {names:?}"));
    assert!(
        drain
            .links
            .contains(&(client_trace.to_owned(), write.span_id.clone())),
        "the drain does not link to the write: {drain:?}"
    );
    let upload = all
        .iter()
        .find(|s| s.name == "s3.put_object" && s.role == "worker")
        .unwrap();
    assert!(descends_from(&all, upload, &drain.span_id), "{upload:?}");
    assert_eq!(upload.trace_id, drain.trace_id);

    // A read that misses the cache asks S3, below its request's span; a 404 is not an error.
    let read = all
        .iter()
        .find(|s| s.name == "GET /get/{key:.*}")
        .unwrap_or_else(|| panic!("no span of the GET; got {names:?}"));
    assert_eq!(read.attributes["http.response.status_code"], "404");
    assert!(
        all.iter()
            .any(|s| s.name.starts_with("s3.") && descends_from(&all, s, &read.span_id)),
        "no S3 call below the GET; got {names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_an_endpoint_nothing_is_sent_and_records_carry_no_trace() {
    let backends = Backends::start().await;
    let (_collector, spans, _) = start_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let (_web, base) = spawn_serve(&backends, &[], &dir.path().join("web.log")).await;
    let put = reqwest::Client::new()
        .put(format!("{base}/blobs/untraced"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body("bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let record = redis_layout().record("untraced");
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(&record)
        .query_async(&mut backends.redis.client().await)
        .await
        .unwrap();
    assert!(!fields.is_empty(), "the write is not in Redis");
    assert!(
        !fields.contains(&blobproxy::cache::layout::record::TRACE.to_owned()),
        "{fields:?}"
    );
    assert!(spans.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_ratio_zero_only_what_the_caller_samples_is_traced_with_its_drain() {
    let backends = Backends::start().await;
    let (collector, spans, _) = start_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("BLOBPROXY_OTLP_ENDPOINT", collector.clone()),
        ("BLOBPROXY_OTLP_SAMPLE_RATIO", "0".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
    ];
    let (_web, base) = spawn_serve(&backends, &env, &dir.path().join("web.log")).await;
    let _worker =
        BlobproxyProcess::spawn(&["worker"], &backends, &env, &dir.path().join("worker.log"));
    let http = reqwest::Client::new();
    let sampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let unsampled = "00-1af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    for (key, traceparent) in [
        ("kept", Some(sampled)),
        ("dropped", Some(unsampled)),
        ("plain", None),
    ] {
        let mut put = http.put(format!("{base}/blobs/{key}")).body("x");
        if let Some(traceparent) = traceparent {
            put = put.header("traceparent", traceparent);
        }
        assert_eq!(put.send().await.unwrap().status(), 201);
    }
    backends.wait_until_drained(Duration::from_secs(20)).await;
    eventually(Duration::from_secs(30), "the kept drain's spans", || {
        let spans = spans.clone();
        async move {
            let all = spans.lock().unwrap().clone();
            all.iter().any(|s| s.name == "s3.put_object").then_some(())
        }
    })
    .await;
    // Give a wrongly kept span time to arrive too.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = spans.lock().unwrap().clone();
    let traces: std::collections::BTreeSet<&str> =
        all.iter().map(|s| s.trace_id.as_str()).collect();
    let drains: Vec<&Received> = all.iter().filter(|s| s.name == "drain").collect();
    assert_eq!(drains.len(), 1, "only the kept write's drain: {drains:?}");
    assert_eq!(drains[0].attributes["key"], "kept");
    // The caller's trace, and the drain's own (linked to it): nothing of the other two.
    assert_eq!(traces.len(), 2, "{traces:?}");
    assert!(traces.contains("0af7651916cd43dd8448eb211c80319c"));
}
