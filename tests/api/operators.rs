//! What operators and API users get besides blobs: listing, auth, metrics, flush, loadgen,
//! request ids and access logs.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

async fn list(app: &TestApp, query: &str) -> serde_json::Value {
    let response = app
        .http
        .get(format!("{}/blobs?{query}", app.address))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{query}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listing_merges_unsaved_keys_with_s3_hides_deleted_ones_and_pages_in_key_order() {
    let backends = Backends::start().await;
    let settings = backends.settings();
    let app = TestApp::spawn(&settings).await;
    let worker = TestWorker::spawn(&settings).await;
    // Some keys in S3 (drained), then more written with no worker: only in Redis.
    for i in 0..12 {
        assert_eq!(
            app.put(&format!("list/a{i:02}"), "txt", &random_bytes(i + 1))
                .await
                .status(),
            201
        );
    }
    backends.wait_until_drained(Duration::from_secs(20)).await;
    worker.stop().await;
    for i in 0..8 {
        assert_eq!(
            app.put(&format!("list/b{i:02}"), "bin", &random_bytes(10))
                .await
                .status(),
            201
        );
    }
    assert_eq!(app.delete("list/a03").await.status(), 200);
    assert_eq!(app.put("other/x", "", b"x").await.status(), 201);

    // Page through 5 at a time.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("prefix=list/&limit=5&cursor={c}"),
            None => "prefix=list/&limit=5".to_owned(),
        };
        let page = list(&app, &query).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 5);
        for item in items {
            seen.push(item.clone());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let keys: Vec<&str> = seen.iter().map(|i| i["key"].as_str().unwrap()).collect();
    let mut expected: Vec<String> = (0..12)
        .filter(|i| *i != 3)
        .map(|i| format!("list/a{i:02}"))
        .collect();
    expected.extend((0..8).map(|i| format!("list/b{i:02}")));
    assert_eq!(
        keys, expected,
        "every key once, in key order, none deleted, none outside the prefix"
    );
    let a05 = seen.iter().find(|i| i["key"] == "list/a05").unwrap();
    assert_eq!(a05["persisted"], true);
    assert_eq!(a05["size"], 6);
    assert_eq!(a05["extension"], "txt");
    assert!(a05["version"].as_u64().unwrap() > 0);
    let b02 = seen.iter().find(|i| i["key"] == "list/b02").unwrap();
    assert_eq!(
        b02["persisted"], false,
        "written a moment ago, not yet in S3"
    );
    assert_eq!(b02["size"], 10);

    // Keys only in S3 (the cache lost them) still list with their metadata.
    let mut redis = backends.redis.client().await;
    let _: () = redis::cmd("DEL")
        .arg(redis_layout().record("list/a07"))
        .query_async(&mut redis)
        .await
        .unwrap();
    let page = list(&app, "prefix=list/a07").await;
    assert_eq!(page["items"][0]["key"], "list/a07");
    assert_eq!(page["items"][0]["extension"], "txt");
    assert_eq!(page["items"][0]["size"], 8);
    assert!(page["next_cursor"].is_null());

    for bad in ["limit=0", "limit=1001", "cursor=!!!", "limit=x"] {
        let response = app
            .http
            .get(format!("{}/blobs?{bad}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(
            response.json::<serde_json::Value>().await.unwrap()["code"],
            "invalid_query"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_an_api_key_data_endpoints_need_the_bearer_token_and_health_stays_open() {
    let backends = Backends::start().await;
    let mut settings = backends.settings();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("api_key");
    std::fs::write(&key_file, "a-long-enough-api-key\n").unwrap();
    settings.server.api_key_file = Some(key_file);
    let app = TestApp::spawn(&settings).await;
    let body = serde_json::json!({"key": "secret", "data": "aGk="});
    for (auth, status, code) in [
        (None, 401, "unauthorized"),
        (Some("Bearer nope"), 401, "unauthorized"),
        (Some("a-long-enough-api-key"), 401, "unauthorized"),
    ] {
        let mut request = app.http.post(format!("{}/put/", app.address)).json(&body);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status);
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        assert_eq!(
            response.json::<serde_json::Value>().await.unwrap()["code"],
            code
        );
    }
    assert_eq!(app.get("secret").await.status(), 401);
    assert_eq!(app.status().await["code"], "unauthorized");
    // Nothing was written by the refused requests.
    let mut redis = backends.redis.client().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(redis_layout().record("*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(keys.is_empty());
    // The right key works; health and metrics need none.
    let response = app
        .http
        .post(format!("{}/put/", app.address))
        .header("authorization", "Bearer a-long-enough-api-key")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    for open in ["/healthz", "/readyz", "/metrics"] {
        let response = app
            .http
            .get(format!("{}{open}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{open}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_requests_by_route_and_status_and_show_the_backlog() {
    let backends = Backends::start().await;
    let settings = backends.settings();
    let app = TestApp::spawn(&settings).await;
    assert_eq!(app.put("m/1", "", b"one").await.status(), 201);
    assert_eq!(app.get("m/1").await.status(), 200);
    assert_eq!(app.get("m/missing").await.status(), 404);
    let text = app.metrics().await;
    let line = |needle: &[&str]| {
        text.lines()
            .find(|l| !l.starts_with('#') && needle.iter().all(|n| l.contains(n)))
            .unwrap_or_else(|| panic!("no metric line with {needle:?} in:\n{text}"))
            .to_owned()
    };
    assert!(line(&["http_requests_total", "route=\"/put/\"", "status=\"201\""]).ends_with(" 1"));
    assert!(
        line(&[
            "http_requests_total",
            "route=\"/get/{key:.*}\"",
            "status=\"404\""
        ])
        .ends_with(" 1")
    );
    line(&["http_request_duration_seconds_bucket", "route=\"/put/\""]);
    assert!(line(&["blobproxy_cache_hits_total"]).ends_with(" 1"));
    // The blob is dirty (no worker yet): the backlog shows it.
    assert!(line(&["blobproxy_dirty_blobs "]).ends_with(" 1"));
    assert!(line(&["blobproxy_queue_depth "]).ends_with(" 1"));
    let _worker = TestWorker::spawn(&settings).await;
    backends.wait_until_drained(Duration::from_secs(20)).await;
    let text = app.metrics().await;
    assert!(
        text.lines().any(|l| l == "blobproxy_dirty_blobs 0"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l == "blobproxy_uploads_total 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn responses_carry_a_request_id_and_each_request_logs_one_json_line() {
    let backends = Backends::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("web.log");
    let env = [
        ("RUST_LOG", "info".into()),
        ("BLOBPROXY_REPLICA_NAME", "web-7".into()),
        ("BLOBPROXY_ACCESS_LOG", "on".into()),
    ];
    let (_web, base) = spawn_serve(&backends, &env, &log).await;
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{base}/put/"))
        .header("x-request-id", "req-123")
        .json(&serde_json::json!({"key": "logged", "data": blobproxy::domain::encode_base64(b"secret bytes")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-123");
    let response = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert!(
        !response.headers()["x-request-id"].is_empty(),
        "one is made when none is sent"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = std::fs::read_to_string(&log).unwrap();
    let line: serde_json::Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["request_id"] == "req-123")
        .unwrap_or_else(|| panic!("no access line in:\n{text}"));
    let fields = &line["fields"];
    assert_eq!(fields["method"], "POST");
    assert_eq!(fields["route"], "/put/");
    assert_eq!(fields["status"], 201);
    assert_eq!(fields["replica"], "web-7");
    assert!(fields["bytes"].as_u64().unwrap() > 0);
    assert!(fields["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(
        !text.contains("c2VjcmV0IGJ5dGVz") && !text.contains("secret bytes"),
        "blob bytes in the log"
    );
}

/// The request ids of the access lines in `log`.
async fn logged_request_ids(log: &std::path::Path) -> Vec<String> {
    // Lines reach the file from the log's own thread, a moment after the answer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "blobproxy::access")
        .map(|v| {
            v["fields"]["request_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn by_default_only_error_answers_are_logged_and_off_logs_none() {
    let backends = Backends::start().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    for (setting, expected) in [(None, vec!["miss"]), (Some("off"), vec![])] {
        let log = dir.path().join(format!("{setting:?}.log"));
        let mut env = vec![("RUST_LOG", "info".to_owned())];
        env.extend(setting.map(|s| ("BLOBPROXY_ACCESS_LOG", s.to_owned())));
        let (_web, base) = spawn_serve(&backends, &env, &log).await;
        let stored = http
            .put(format!("{base}/blobs/logged"))
            .header("x-request-id", "stored")
            .body("bytes")
            .send()
            .await
            .unwrap();
        assert_eq!(stored.status(), 201);
        let missing = http
            .get(format!("{base}/get/nothing-here"))
            .header("x-request-id", "miss")
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
        assert_eq!(logged_request_ids(&log).await, expected, "{setting:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn loadgen_verifies_every_blob_and_flush_waits_for_s3() {
    let backends = Backends::start().await;
    let settings = backends.settings();
    let app = TestApp::spawn(&settings).await;
    let out = Command::new(env!("CARGO_BIN_EXE_blobproxy"))
        .args([
            "loadgen",
            "--url",
            &app.address,
            "--amount",
            "200",
            "--size",
            "2KiB",
            "--concurrency",
            "8",
            "--verify",
            "--prefix",
            "lg",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("mismatches: 0"), "{summary}");
    assert!(
        summary
            .lines()
            .any(|l| l.starts_with("PUT") && l.contains(" 200 ")),
        "{summary}"
    );
    let listed = {
        let page: serde_json::Value = app
            .http
            .get(format!("{}/blobs?prefix=lg/&limit=1000", app.address))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["items"].as_array().unwrap().len()
    };
    assert_eq!(listed, 200);
    // Nothing drained yet; flush waits while a worker drains.
    let flush = blobproxy_command(&backends)
        .args(["flush", "--timeout-secs", "60"])
        .spawn()
        .unwrap();
    let _worker = TestWorker::spawn(&settings).await;
    let out = tokio::task::spawn_blocking(move || flush.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success());
    let keys: HashSet<String> = backends.s3.keys().await.into_iter().collect();
    assert_eq!(keys.iter().filter(|k| k.starts_with("lg/")).count(), 200);

    // A loadgen against a wrong URL fails loudly.
    let out = Command::new(env!("CARGO_BIN_EXE_blobproxy"))
        .args([
            "loadgen",
            "--url",
            &format!("http://127.0.0.1:{}", free_port()),
            "--amount",
            "3",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serving_beyond_loopback_without_an_api_key_warns_at_start_up() {
    let backends = Backends::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("web.log");
    let _web = BlobproxyProcess::spawn(
        &["serve"],
        &backends,
        &[("BLOBPROXY_BIND", format!("0.0.0.0:{port}"))],
        &log,
    );
    wait_for_addr(&format!("127.0.0.1:{port}"), "replica").await;
    // Lines reach the file from the log's own thread, a moment later.
    eventually(Duration::from_secs(5), "the warning in the log", || {
        let text = std::fs::read_to_string(&log).unwrap();
        async move { text.contains("no API key").then_some(()) }
    })
    .await;
}

/// The nice value of every thread of a process.
fn thread_nice_values(pid: u32) -> Vec<i64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|task| {
            let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
            // Fields after the command name: state is field 3, nice is field 19.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .unwrap()
                .1
                .split_whitespace()
                .collect();
            fields[16].parse().unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_worker_drains_at_a_lower_cpu_priority_than_the_replicas() {
    let backends = Backends::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let web = BlobproxyProcess::spawn(
        &["serve"],
        &backends,
        &[("BLOBPROXY_BIND", format!("127.0.0.1:{port}"))],
        &dir.path().join("web.log"),
    );
    let worker = BlobproxyProcess::spawn(&["worker"], &backends, &[], &dir.path().join("w.log"));
    let custom = BlobproxyProcess::spawn(
        &["worker"],
        &backends,
        &[
            ("BLOBPROXY_WORKER_NICE", "3".into()),
            ("BLOBPROXY_WORKER_THREADS", "3".into()),
        ],
        &dir.path().join("w3.log"),
    );
    wait_for_addr(&format!("127.0.0.1:{port}"), "replica").await;
    // Once a worker drained a blob, the threads it starts are up (the replica's runtime has
    // one per core; a worker runs on one thread unless BLOBPROXY_WORKER_THREADS says more).
    let response = reqwest::Client::new()
        .put(format!("http://127.0.0.1:{port}/blobs/niced"))
        .body(random_bytes(100))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    backends.wait_until_drained(Duration::from_secs(20)).await;
    for (process, nice, min_threads) in [(&web, 0, 2), (&worker, 10, 1), (&custom, 3, 4)] {
        let values = thread_nice_values(process.pid());
        assert!(values.len() >= min_threads, "{}: {values:?}", process.name);
        assert!(
            values.iter().all(|&v| v == nice),
            "{}: thread nice values {values:?}, expected all {nice}",
            process.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_listing_of_a_missing_bucket_is_an_unavailable_store_not_a_missing_key() {
    let backends = Backends::start().await;
    let app = TestApp::spawn(&backends.settings()).await;
    std::fs::remove_dir_all(backends.s3.dir.path().join(BUCKET)).unwrap();
    let response = app
        .http
        .get(format!("{}/blobs", app.address))
        .send()
        .await
        .unwrap();
    // Was 404 `no blob with key ""`: the listing's 404 (no such bucket) read as a missing key.
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "s3_unavailable", "{body}");
    let msg = body["msg"].as_str().unwrap();
    assert!(
        !msg.contains(BUCKET) && !msg.contains("NoSuch"),
        "internals in {msg}"
    );
}
