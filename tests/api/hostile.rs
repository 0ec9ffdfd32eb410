//! Hostile and careless input, as the fuzzer found it: each class of defect it found, through
//! the HTTP API against the real servers.

use std::time::Duration;

use crate::helpers::*;
use crate::raw::raw_put;
use crate::s3_proxy::S3Proxy;

async fn body(response: reqwest::Response) -> serde_json::Value {
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_s3_cannot_store_or_list_are_refused_before_anything_is_written() {
    let backends = Backends::start().await;
    let app = TestApp::spawn(&backends.settings()).await;
    for key in [
        "%20",
        "%C2%A0",
        "%20%09",
        "a%EF%BF%BE",
        "%EF%BF%BFb",
        &"s".repeat(256),
    ] {
        let response = raw_put(&app, &format!("{key}?wc=1"), None, b"hi".to_vec()).await;
        assert_eq!(response.status(), 400, "PUT {key}");
        assert_eq!(body(response).await["code"], "invalid_key", "PUT {key}");
        let response = app
            .http
            .get(format!("{}/get/{key}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "GET {key}");
    }
    assert_eq!(app.status().await["dirty"], 0);
    assert!(backends.s3.keys().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prefix_or_cursor_xml_cannot_carry_is_the_clients_error_not_an_outage() {
    let backends = Backends::start().await;
    let app = TestApp::spawn(&backends.settings()).await;
    for query in ["prefix=%1B", "prefix=a%EF%BF%BF", "cursor=Gw"] {
        let response = app
            .http
            .get(format!("{}/blobs?{query}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        assert!(!response.headers().contains_key("retry-after"), "{query}");
        assert_eq!(body(response).await["code"], "invalid_query", "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_s3_does_not_promise_will_pass_is_dead_lettered_not_retried_forever() {
    let backends = Backends::start().await;
    let proxy = S3Proxy::start(backends.s3.port).await;
    proxy.refuse_with(BUCKET, "odd/answer", 501, "NotImplemented");
    let mut settings = backends.settings();
    settings.s3.endpoint = Some(proxy.endpoint());
    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;
    let data = random_bytes(100);
    assert_eq!(app.put("odd/answer", "", &data).await.status(), 201);
    let status = eventually(Duration::from_secs(30), "a dead letter", || async {
        let status = app.status().await;
        (status["dead_letters"] == 1).then_some(status)
    })
    .await;
    let error = status["dead_letter_sample"][0]["error"].as_str().unwrap();
    assert!(error.contains("NotImplemented"), "{error}");
    assert_eq!(
        proxy.refused_count(),
        4,
        "the usual attempts, then the dead letters"
    );
    // Still dirty and served from the cache: never dropped.
    assert_eq!(app.get_bytes("odd/answer").await.0, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_is_one_sentence_to_the_client_and_the_details_go_to_the_log() {
    let mut backends = Backends::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("web.log");
    let (_web, base) = spawn_serve(&backends, &[("RUST_LOG", "info".into())], &log).await;
    backends.s3.stop();
    let http = reqwest::Client::new();
    let response = http
        .get(format!("{base}/get/never/cached"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let answer = body(response).await;
    assert_eq!(answer["code"], "s3_unavailable");
    let msg = answer["msg"].as_str().unwrap();
    for internal in [
        "127.0.0.1",
        BUCKET,
        "dispatch",
        "Connector",
        "{",
        "S3 is unavailable: ",
    ] {
        assert!(!msg.contains(internal), "{internal:?} in {msg:?}");
    }
    let response = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let answer = body(response).await;
    assert_eq!(answer["code"], "not_ready");
    assert_eq!(answer["msg"], "not ready: S3 does not answer");
    // The cause is in the access log line of that request.
    let line = eventually(Duration::from_secs(5), "the access log line", || async {
        let text = std::fs::read_to_string(&log).unwrap();
        text.lines()
            .find(|l| l.contains(&request_id) && l.contains("blobproxy::access"))
            .map(str::to_owned)
    })
    .await;
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    let detail = line["fields"]["detail"].as_str().unwrap();
    assert!(detail.contains("S3"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn made_up_methods_share_one_metrics_label() {
    let backends = Backends::start().await;
    let mut settings = backends.settings();
    settings.server.api_key = Some("a-key-of-sixteen-chars".into());
    let app = TestApp::spawn(&settings).await;
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        let response = app
            .http
            .request(method, format!("{}/blobs/k", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let metrics = app.metrics().await;
    assert!(!metrics.contains("MADEUP"), "client methods became labels");
    assert!(metrics.contains("method=\"OTHER\""), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lower_case_bearer_scheme_is_accepted() {
    let backends = Backends::start().await;
    let mut settings = backends.settings();
    settings.server.api_key = Some("a-key-of-sixteen-chars".into());
    let app = TestApp::spawn(&settings).await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = app
            .http
            .get(format!("{}/status", app.address))
            .header("authorization", format!("{scheme} a-key-of-sixteen-chars"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{scheme}");
    }
    let response = app
        .http
        .get(format!("{}/status", app.address))
        .header("authorization", "bearer wrong-key-of-sixteen")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn head_answers_like_get_without_a_body_on_every_read_route() {
    let backends = Backends::start().await;
    let app = TestApp::spawn(&backends.settings()).await;
    assert_eq!(app.put("h/k", "txt", b"hello").await.status(), 201);
    for path in [
        "/get/h/k",
        "/blobs/h/k",
        "/blobs",
        "/status",
        "/healthz",
        "/readyz",
    ] {
        let get = app
            .http
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        let head = app
            .http
            .head(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), get.status(), "HEAD {path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "HEAD {path}"
        );
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path} sent a body"
        );
    }
    // HEAD never deletes.
    let head = app
        .http
        .head(format!("{}/remove/h/k", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 405);
    assert_eq!(app.get("h/k").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stored_html_is_never_run_by_a_browser_in_the_service_origin() {
    let backends = Backends::start().await;
    let app = TestApp::spawn(&backends.settings()).await;
    let page = b"<script>alert(document.cookie)</script>".to_vec();
    assert_eq!(
        raw_put(&app, "x.html", Some("text/html"), page.clone())
            .await
            .status(),
        201
    );
    let response = app
        .http
        .get(format!("{}/blobs/x.html", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/html");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["content-security-policy"], "sandbox");
    assert_eq!(response.bytes().await.unwrap(), page);
}

/// Sends `head` (a request whose body is shorter than declared), then `trickle` one byte at a
/// time every `every`, and returns what the server answered and how long it took.
async fn slow_body(
    app: &TestApp,
    head: String,
    trickle: usize,
    every: Duration,
) -> (String, Duration) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = app.address.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let started = std::time::Instant::now();
    write.write_all(head.as_bytes()).await.unwrap();
    let writer = tokio::spawn(async move {
        for _ in 0..trickle {
            tokio::time::sleep(every).await;
            if write.write_all(b"x").await.is_err() {
                break;
            }
        }
        // Keep the connection open: the client never finishes.
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(write);
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), read.read_to_end(&mut answer))
        .await
        .expect("the server held the connection for 30 s");
    writer.abort();
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

fn quick_body_settings(backends: &Backends) -> blobproxy::config::Settings {
    let mut settings = backends.settings();
    settings.server.body_timeout = std::time::Duration::from_secs(3);
    settings.server.body_idle = std::time::Duration::from_secs(1);
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_body_is_cut_with_a_json_408_and_stores_nothing() {
    let backends = Backends::start().await;
    let app = TestApp::spawn(&quick_body_settings(&backends)).await;
    for head in [
        "PUT /blobs/stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc".to_owned(),
        "POST /put/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{\"key\":"
            .to_owned(),
    ] {
        let (answer, took) = slow_body(&app, head, 0, Duration::ZERO).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"code\":\"body_timeout\""), "{answer}");
        assert!(
            took < Duration::from_secs(3),
            "cut after {took:?}, not at the idle bound"
        );
    }
    assert_eq!(app.get("stalled").await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trickled_body_is_cut_at_the_total_bound() {
    let backends = Backends::start().await;
    let app = TestApp::spawn(&quick_body_settings(&backends)).await;
    let head = "PUT /blobs/trickled HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".to_owned();
    // A byte every 300 ms never stalls for the idle second, but 100 of them take 30 s.
    let (answer, took) = slow_body(&app, head, 100, Duration::from_millis(300)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"body_timeout\""), "{answer}");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert_eq!(app.get("trickled").await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_nobody_reads_does_not_hold_the_connection() {
    let backends = Backends::start().await;
    let mut settings = quick_body_settings(&backends);
    settings.server.api_key = Some("a-key-of-sixteen-chars".into());
    let app = TestApp::spawn(&settings).await;
    for head in [
        "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",
        "PUT /blobs/refused HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",
    ] {
        let (answer, took) = slow_body(&app, head.to_owned(), 0, Duration::ZERO).await;
        assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
        assert!(took < Duration::from_secs(10), "held for {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_http_layers_own_errors_are_json_with_a_code() {
    let backends = Backends::start().await;
    let app = TestApp::spawn(&backends.settings()).await;
    let cases = [
        (
            "PUT /blobs/twice HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc".to_owned(),
            "400",
            "malformed_request",
        ),
        (
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
                (0..120).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
            ),
            "431",
            "headers_too_large",
        ),
        // The head never ends: cut after actix's 5 s.
        ("GET /healthz HTTP/1.1\r\nHost: x\r\n".to_owned(), "408", "request_timeout"),
    ];
    for (request, status, code) in cases {
        let (answer, _) = slow_body(&app, request, 0, Duration::ZERO).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{answer}"
        );
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(
            head.to_lowercase()
                .contains("content-type: application/json"),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["code"], code);
    }
    assert_eq!(app.get("twice").await.status(), 404);
}
