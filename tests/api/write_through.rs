//! Large blobs: over `BLOBPROXY_WRITE_THROUGH_BYTES` they skip the cache and stream to S3 as a
//! multipart upload, and the newest acknowledged write still wins.

use std::sync::Arc;
use std::time::Duration;

use crate::helpers::*;
use crate::raw::raw_put;
use crate::s3_proxy::S3Proxy;

const MIB: usize = 1024 * 1024;

fn large_blob_settings(backends: &Backends) -> blobproxy::config::Settings {
    let mut settings = backends.settings();
    settings.server.max_blob_bytes = 32 * MIB;
    settings.server.write_through_bytes = MIB;
    settings
}

async fn redis_keys(backends: &Backends, pattern: &str) -> Vec<String> {
    let mut redis = backends.redis.client().await;
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut redis)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_raw_put_is_in_s3_when_acknowledged_and_never_in_redis() {
    let backends = Backends::start().await;
    let settings = large_blob_settings(&backends);
    let (one, two) = tokio::join!(TestApp::spawn(&settings), TestApp::spawn(&settings));
    // No worker runs: whatever reaches S3 was written through by the replica itself.
    let data = random_bytes(20 * MIB + 12_345); // three parts: 8 + 8 + 4 MiB
    let response = raw_put(&one, "large/video?ext=mp4", Some("video/mp4"), data.clone()).await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["size"], data.len());
    assert_eq!(body["persisted"], true);
    let version = body["version"].as_u64().unwrap();

    let object = backends.s3.object_at("large/video", version).await.unwrap();
    assert!(object.data == data, "S3 holds other bytes");
    assert_eq!(object.content_type, "video/mp4");
    assert_eq!(object.extension, "mp4");
    assert!(
        redis_keys(&backends, &redis_layout().record("*"))
            .await
            .is_empty()
    );
    assert!(
        redis_keys(&backends, &redis_layout().stage("*"))
            .await
            .is_empty()
    );

    // Read at once on the other replica, from S3, and not pulled into the cache.
    let response = two
        .http
        .get(format!("{}/blobs/large/video", two.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "video/mp4");
    assert_eq!(
        response.headers()["etag"].to_str().unwrap(),
        format!("\"{version}\"")
    );
    assert!(response.bytes().await.unwrap() == data);
    assert!(
        redis_keys(&backends, &redis_layout().record("*"))
            .await
            .is_empty()
    );
    assert_eq!(two.status().await["dirty"], 0);

    // Ranges and validators work on a blob streamed from S3 as on a cached one: one range
    // inside a chunk, one across the 8 MiB part boundary, and a suffix.
    let total = data.len();
    for (header, from, to) in [
        ("bytes=9000000-9000099".to_string(), 9_000_000, 9_000_099),
        ("bytes=8388000-8389000".to_string(), 8_388_000, 8_389_000),
        ("bytes=-10".to_string(), total - 10, total - 1),
    ] {
        let response = two
            .http
            .get(format!("{}/blobs/large/video", two.address))
            .header("range", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 206, "{header}");
        assert_eq!(
            response.headers()["content-range"].to_str().unwrap(),
            format!("bytes {from}-{to}/{total}")
        );
        assert!(
            response.bytes().await.unwrap() == data[from..=to],
            "{header}"
        );
    }
    let response = two
        .http
        .get(format!("{}/blobs/large/video", two.address))
        .header("if-none-match", format!("\"{version}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 304);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_json_put_is_written_through_too() {
    let backends = Backends::start().await;
    let app = TestApp::spawn(&large_blob_settings(&backends)).await;
    let data = random_bytes(2 * MIB);
    let response = app.put("large/json", "bin", &data).await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["persisted"], true);
    let version = body["version"].as_u64().unwrap();
    let object = backends.s3.object_at("large/json", version).await.unwrap();
    assert!(object.data == data);
    assert!(
        redis_keys(&backends, &redis_layout().record("*"))
            .await
            .is_empty()
    );
    assert!(app.get_bytes("large/json").await.0 == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_write_replaces_an_older_cached_version_that_is_not_yet_in_s3() {
    let backends = Backends::start().await;
    let settings = large_blob_settings(&backends);
    let app = TestApp::spawn(&settings).await;
    // v1 small, cached and dirty (no worker yet); v2 large, written through.
    assert_eq!(app.put("k", "bin", &random_bytes(1000)).await.status(), 201);
    let large = random_bytes(3 * MIB);
    let response = raw_put(&app, "k?ext=bin", None, large.clone()).await;
    assert_eq!(response.status(), 201);
    let version: u64 = response.json::<serde_json::Value>().await.unwrap()["version"]
        .as_u64()
        .unwrap();
    assert!(app.get_bytes("k").await.0 == large);
    // A worker started now must not bring v1 back over v2.
    let worker = TestWorker::spawn(&settings).await;
    backends.wait_until_drained(Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.stop().await;
    let object = backends.s3.object("k").await.unwrap();
    assert_eq!(object.version, version);
    assert!(object.data == large);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_write_during_a_slow_large_upload_is_the_one_that_stays() {
    let backends = Backends::start().await;
    let proxy = S3Proxy::start(backends.s3.port).await;
    let mut settings = large_blob_settings(&backends);
    settings.s3.endpoint = Some(proxy.endpoint());
    let app = Arc::new(TestApp::spawn(&settings).await);
    let worker = TestWorker::spawn(&settings).await;
    proxy.set_delay(Duration::from_millis(700)); // every S3 request of the large write is slow

    let large = random_bytes(10 * MIB);
    let upload = tokio::spawn({
        let (app, large) = (app.clone(), large.clone());
        async move { raw_put(&app, "race?ext=bin", None, large).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let small = random_bytes(500);
    let response = app.put("race", "bin", &small).await;
    assert_eq!(response.status(), 201);
    let small_version = response.json::<serde_json::Value>().await.unwrap()["version"]
        .as_u64()
        .unwrap();
    let response = upload.await.unwrap();
    assert_eq!(response.status(), 201);
    let large_version = response.json::<serde_json::Value>().await.unwrap()["version"]
        .as_u64()
        .unwrap();
    assert!(
        large_version < small_version,
        "the large write started first"
    );
    // The newer, small write is what everyone reads, and what S3 ends with.
    assert!(app.get_bytes("race").await.0 == small);
    proxy.set_delay(Duration::ZERO);
    backends.wait_until_drained(Duration::from_secs(30)).await;
    worker.stop().await;
    let object = backends.s3.object_at("race", small_version).await.unwrap();
    assert!(object.data == small);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_write_while_s3_is_down_is_refused_with_503_and_changes_nothing() {
    let mut backends = Backends::start().await;
    let app = TestApp::spawn(&large_blob_settings(&backends)).await;
    assert_eq!(
        app.put("down", "bin", &random_bytes(100)).await.status(),
        201
    );
    backends.s3.stop();
    let response = raw_put(&app, "down?ext=bin", None, random_bytes(3 * MIB)).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "s3_unavailable");
    let msg = body["msg"].as_str().unwrap();
    assert!(!msg.contains("unavailable: S3 is unavailable"), "{msg}");
    // Nothing changed: the small version is still what everyone reads, and the key is free.
    assert_eq!(app.get_bytes("down").await.0.len(), 100);
    assert!(
        redis_keys(&backends, &redis_layout().lease("*"))
            .await
            .is_empty()
    );
    backends.s3.restart().await;
    let large = random_bytes(3 * MIB);
    let response = raw_put(&app, "down?ext=bin", None, large.clone()).await;
    assert_eq!(response.status(), 201);
    assert!(app.get_bytes("down").await.0 == large);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_write_that_loses_its_lease_mid_upload_answers_upload_interrupted() {
    let backends = Backends::start().await;
    let proxy = S3Proxy::start(backends.s3.port).await;
    let mut settings = large_blob_settings(&backends);
    settings.s3.endpoint = Some(proxy.endpoint());
    let app = Arc::new(TestApp::spawn(&settings).await);
    // Slow enough that the lease is renewed (every ~3.3 s) while the upload still runs.
    proxy.set_delay(Duration::from_millis(2000));
    let upload = tokio::spawn({
        let app = app.clone();
        async move { raw_put(&app, "stolen?ext=bin", None, random_bytes(10 * MIB)).await }
    });
    eventually(
        Duration::from_secs(5),
        "the upload to take the lease",
        || async {
            (!redis_keys(&backends, &redis_layout().lease("stolen"))
                .await
                .is_empty())
            .then_some(())
        },
    )
    .await;
    // Another holder takes the key (as after a stall long enough for the lease to expire).
    let mut redis = backends.redis.client().await;
    let _: () = redis::cmd("SET")
        .arg(redis_layout().lease("stolen"))
        .arg("another-holder 99999999999999")
        .query_async(&mut redis)
        .await
        .unwrap();
    let response = upload.await.unwrap();
    assert_eq!(response.status(), 409);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "upload_interrupted");
    assert!(body["msg"].as_str().unwrap().contains("stolen"), "{body}");
    proxy.set_delay(Duration::ZERO);
    assert!(
        backends.s3.object("stolen").await.is_none(),
        "the upload was completed"
    );
}
