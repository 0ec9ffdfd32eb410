//! Deletes and write concern, as a client sees them.

use std::time::Duration;

use crate::helpers::*;
use crate::s3_proxy::S3Proxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_answers_404_everywhere_at_once_and_the_worker_removes_the_object() {
    let backends = Backends::start().await;
    let settings = backends.settings();
    let (one, two) = tokio::join!(TestApp::spawn(&settings), TestApp::spawn(&settings));
    let _worker = TestWorker::spawn(&settings).await;
    let data = random_bytes(300);
    assert_eq!(one.put("doomed/a", "txt", &data).await.status(), 201);
    eventually(Duration::from_secs(20), "doomed/a in S3", || {
        backends.s3.object("doomed/a")
    })
    .await;

    let response = one.delete("doomed/a").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["key"], "doomed/a");
    assert!(body["msg"].is_string() && body["version"].as_u64().is_some());
    // Both replicas answer 404 at once, though S3 may still hold the object.
    for app in [&one, &two] {
        let response = app.get("doomed/a").await;
        assert_eq!(response.status(), 404);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "not_found");
    }
    backends.wait_until_drained(Duration::from_secs(20)).await;
    assert!(
        backends.s3.object("doomed/a").await.is_none(),
        "the worker left the object in S3"
    );
    // Still 404 once the marker is clean, and a second delete is a 404 too.
    assert_eq!(two.get("doomed/a").await.status(), 404);
    assert_eq!(two.delete("doomed/a").await.status(), 404);
    // The seed's GET /remove/<key> does the same.
    assert_eq!(one.put("doomed/b", "", b"b").await.status(), 201);
    let response = one
        .http
        .get(format!("{}/remove/doomed/b", one.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(one.get("doomed/b").await.status(), 404);
    // A key never written is a JSON 404.
    let response = one.delete("never/was").await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["code"],
        "not_found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_key_only_in_s3_works_after_the_cache_lost_it() {
    let backends = Backends::start().await;
    let settings = backends.settings();
    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;
    assert_eq!(app.put("cold", "", b"x").await.status(), 201);
    backends.wait_until_drained(Duration::from_secs(20)).await;
    let mut redis = backends.redis.client().await;
    let _: () = redis::cmd("DEL")
        .arg(redis_layout().record("cold"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(app.delete("cold").await.status(), 200);
    assert_eq!(app.get("cold").await.status(), 404);
    backends.wait_until_drained(Duration::from_secs(20)).await;
    assert!(backends.s3.object("cold").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pending_upload_never_brings_a_deleted_key_back() {
    let backends = Backends::start().await;
    let proxy = S3Proxy::start(backends.s3.port).await;
    proxy.set_delay(Duration::from_millis(500));
    let mut settings = backends.settings();
    settings.s3.endpoint = Some(proxy.endpoint());
    let app = TestApp::spawn(&settings).await;
    let _workers = [
        TestWorker::spawn(&settings).await,
        TestWorker::spawn(&settings).await,
    ];
    for round in 0..5 {
        let key = format!("zombie/{round}");
        assert_eq!(app.put(&key, "", &random_bytes(100)).await.status(), 201);
        // Let the slow upload start, then delete while it is in flight.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(app.delete(&key).await.status(), 200);
    }
    backends.wait_until_drained(Duration::from_secs(30)).await;
    for round in 0..5 {
        let key = format!("zombie/{round}");
        assert!(
            backends.s3.object(&key).await.is_none(),
            "{key} came back in S3"
        );
        assert_eq!(
            app.get(&key).await.status(),
            404,
            "{key} came back in the cache"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_concern_1_answers_once_the_version_is_in_s3() {
    let backends = Backends::start().await;
    let settings = backends.settings();
    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;
    let data = random_bytes(4096);
    let response = app
        .http
        .post(format!("{}/put/?wc=1", app.address))
        .json(
            &serde_json::json!({"key": "durable", "data": blobproxy::domain::encode_base64(&data)}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["persisted"], true);
    // Already there: no waiting.
    let object = backends
        .s3
        .object("durable")
        .await
        .expect("in S3 when wc=1 answered");
    assert!(object.data == data);
    assert_eq!(object.version, body["version"].as_u64().unwrap());
    // The default (wc=0) says it did not wait.
    let body: serde_json::Value = app.put("fast", "", b"f").await.json().await.unwrap();
    assert_eq!(body["persisted"], false);
    // A delete with wc=1 answers once the object is gone.
    let response = app
        .http
        .delete(format!("{}/blobs/durable?wc=1", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(backends.s3.object("durable").await.is_none());
    // Only 0 and 1 are write concerns.
    let response = app
        .http
        .post(format!("{}/put/?wc=2", app.address))
        .json(&serde_json::json!({"key": "k", "data": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["code"],
        "invalid_query"
    );
    assert_eq!(app.get("k").await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_concern_1_times_out_with_504_when_s3_is_down_and_the_write_still_stands() {
    let mut backends = Backends::start().await;
    let mut settings = backends.settings();
    settings.server.wc_timeout = std::time::Duration::from_secs(1);
    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;
    backends.s3.stop();
    let data = random_bytes(100);
    let response = app
        .http
        .post(format!("{}/put/?wc=1", app.address))
        .json(
            &serde_json::json!({"key": "queued", "data": blobproxy::domain::encode_base64(&data)}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "persist_timeout");
    assert_eq!(body["persisted"], false);
    assert_eq!(body["key"], "queued");
    assert!(body["msg"].as_str().unwrap().contains("queued"));
    assert_eq!(app.get_bytes("queued").await.0, data);
    backends.s3.restart().await;
    let version = body["version"].as_u64().unwrap();
    let object = eventually(Duration::from_secs(30), "queued in S3", || {
        backends.s3.object_at("queued", version)
    })
    .await;
    assert!(object.data == data);
}

/// Script calls Redis has run so far (`EVALSHA`, plus `EVAL`), not counting those refused
/// with NOSCRIPT before a script was loaded.
async fn script_calls(backends: &Backends) -> u64 {
    let mut conn = backends.redis.client().await;
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    stats
        .lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .map(|l| {
            let field = |name: &str| -> u64 {
                l.split([':', ','])
                    .find_map(|f| f.strip_prefix(name)?.parse().ok())
                    .unwrap_or(0)
            };
            field("calls=") - field("failed_calls=")
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_small_writes_share_script_calls_and_each_stands_on_its_own() {
    let backends = Backends::start().await;
    let settings = backends.settings();
    let app = TestApp::spawn(&settings).await;
    // The replica's threads open their own connections as they start.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A lone write waits for no company: one call per write when writes come one by one.
    let before = script_calls(&backends).await;
    for i in 0..10 {
        assert_eq!(
            app.put(&format!("lone/{i}"), "", b"alone").await.status(),
            201
        );
    }
    assert_eq!(script_calls(&backends).await - before, 10);

    // Many at once: a replica thread sends the writes that arrive while its previous call is
    // in flight as one call.
    let blobs: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| (format!("burst/{i}"), random_bytes(200 + i % 700)))
        .collect();
    let before = script_calls(&backends).await;
    let answers =
        futures::future::join_all(blobs.iter().map(|(key, data)| app.put(key, "bin", data))).await;
    let calls = script_calls(&backends).await - before;
    let mut versions = std::collections::BTreeSet::new();
    for response in answers {
        assert_eq!(response.status(), 201);
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            versions.insert(body["version"].as_u64().unwrap()),
            "a version twice"
        );
    }
    assert!(
        calls < 300,
        "{calls} script calls for 300 concurrent writes"
    );
    for (key, data) in &blobs {
        assert!(
            app.get_bytes(key).await.0 == *data,
            "{key} reads back other bytes"
        );
    }
    // The batches' shared jobs drain every key.
    let _worker = TestWorker::spawn(&settings).await;
    backends.wait_until_drained(Duration::from_secs(30)).await;
    for (key, data) in &blobs {
        let object = backends.s3.object(key).await.unwrap();
        assert!(object.data == *data, "{key} differs in S3");
    }
    println!("300 concurrent writes: {calls} script calls");
}
