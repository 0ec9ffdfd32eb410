//! The write and read path: what a client sees, against each S3 server the suite runs
//! (s3s-fs, and moto as a check of compatibility with a server closer to AWS).

use std::time::Duration;

use crate::helpers::*;

async fn round_trips_keep_the_exact_bytes_at_every_size(kind: S3Kind) {
    let backends = Backends::start_on(kind).await;
    let mut settings = backends.settings();
    settings.server.max_blob_bytes = 4 * 1024 * 1024;
    let app = TestApp::spawn(&settings).await;
    // Both sides of 16 KiB: smaller blobs go into Redis inside the PUT script, larger ones are
    // staged first and moved into place.
    for size in [
        0,
        1,
        1024,
        16 * 1024 - 1,
        16 * 1024,
        1024 * 1024,
        4 * 1024 * 1024,
    ] {
        let key = format!("sizes/{size}.bin");
        let data = random_bytes(size);
        let response = app.put(&key, "bin", &data).await;
        assert_eq!(response.status(), 201, "PUT of {size} bytes");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["key"], key);
        assert_eq!(body["size"], size);
        assert!(body["msg"].is_string());
        assert!(body["version"].as_u64().unwrap() > 0);
        let (read, extension) = app.get_bytes(&key).await;
        assert_eq!(read.len(), size);
        assert!(read == data, "bytes of the {size}-byte blob differ");
        assert_eq!(extension, "bin");
    }
}

async fn put_then_get_on_another_replica_returns_same_bytes(kind: S3Kind) {
    let backends = Backends::start_on(kind).await;
    let settings = backends.settings();
    let (one, two) = tokio::join!(TestApp::spawn(&settings), TestApp::spawn(&settings));
    // No worker runs: the read is served from the cache alone, at once.
    for i in 0..20 {
        let key = format!("replicas/{i}");
        let data = random_bytes(100 + i);
        assert_eq!(one.put(&key, "", &data).await.status(), 201);
        assert_eq!(two.get_bytes(&key).await.0, data);
    }
}

async fn versions_grow_with_each_write_and_get_returns_the_last(kind: S3Kind) {
    let backends = Backends::start_on(kind).await;
    let app = TestApp::spawn(&backends.settings()).await;
    let mut last_version = 0;
    let mut last = Vec::new();
    for i in 0..5 {
        last = random_bytes(10 + i);
        let body: serde_json::Value = app.put("k", "txt", &last).await.json().await.unwrap();
        let version = body["version"].as_u64().unwrap();
        assert!(version > last_version, "{version} <= {last_version}");
        last_version = version;
    }
    let body: serde_json::Value = app.get("k").await.json().await.unwrap();
    assert_eq!(body["version"].as_u64().unwrap(), last_version);
    assert_eq!(app.get_bytes("k").await.0, last);
}

async fn unknown_key_is_a_json_404(kind: S3Kind) {
    let backends = Backends::start_on(kind).await;
    let app = TestApp::spawn(&backends.settings()).await;
    let response = app.get("no/such/key").await;
    assert_eq!(response.status(), 404);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    assert!(body["msg"].as_str().unwrap().contains("no/such/key"));
}

async fn keys_with_slashes_and_reserved_characters_round_trip(kind: S3Kind) {
    let backends = Backends::start_on(kind).await;
    let app = TestApp::spawn(&backends.settings()).await;
    for key in [
        "a/b/c.png",
        "with space/and?query#frag",
        "percent%41",
        "ünï/cødé",
    ] {
        let data = random_bytes(33);
        assert_eq!(app.put(key, "png", &data).await.status(), 201, "{key}");
        assert_eq!(app.get_bytes(key).await.0, data, "{key}");
    }
}

async fn get_after_the_cache_is_flushed_is_served_from_s3_and_recached(kind: S3Kind) {
    let backends = Backends::start_on(kind).await;
    let settings = backends.settings();
    let app = TestApp::spawn(&settings).await;
    let worker = TestWorker::spawn(&settings).await;
    let data = random_bytes(5000);
    let body: serde_json::Value = app
        .put("flushed/photo", "jpg", &data)
        .await
        .json()
        .await
        .unwrap();
    let version = body["version"].as_u64().unwrap();
    backends.wait_until_drained(Duration::from_secs(20)).await;
    worker.stop().await;

    let mut redis = backends.redis.client().await;
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut redis)
        .await
        .unwrap();

    let response = app.get("flushed/photo").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["extension"], "jpg");
    assert_eq!(body["version"].as_u64().unwrap(), version);
    assert_eq!(
        blobproxy::domain::decode_base64(body["data"].as_str().unwrap()).unwrap(),
        data
    );
    // Back in the cache as clean, with the cache TTL.
    let (state, ttl): (String, i64) = redis::pipe()
        .hget(redis_layout().record("flushed/photo"), record::STATE)
        .ttl(redis_layout().record("flushed/photo"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(state, record::CLEAN);
    assert!(ttl > 0 && ttl <= 3600, "ttl {ttl}");
}

async fn large_writes_survive_a_lost_script_cache_and_leave_no_staged_bytes(kind: S3Kind) {
    let backends = Backends::start_on(kind).await;
    let settings = backends.settings();
    let app = TestApp::spawn(&settings).await;
    let mut redis = backends.redis.client().await;
    let (mut last, mut version) = (Vec::new(), 0);
    for (i, size) in [200_000, 100, 300_000, 20_000].into_iter().enumerate() {
        // Redis forgets every script (as after a restart): the write must load the script
        // again and still store these exact bytes.
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut redis)
            .await
            .unwrap();
        last = random_bytes(size);
        let response = app.put("big/overwritten", "bin", &last).await;
        assert_eq!(response.status(), 201, "write {i} of {size} bytes");
        let body: serde_json::Value = response.json().await.unwrap();
        version = body["version"].as_u64().unwrap();
        assert_eq!(app.get_bytes("big/overwritten").await.0, last, "write {i}");
    }
    let staged: Vec<String> = redis::cmd("KEYS")
        .arg(redis_layout().stage("*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(staged.is_empty(), "staged bytes left behind: {staged:?}");

    let worker = TestWorker::spawn(&settings).await;
    backends.wait_until_drained(Duration::from_secs(20)).await;
    worker.stop().await;
    let object = backends
        .s3
        .object_at("big/overwritten", version)
        .await
        .unwrap();
    assert!(object.data == last, "S3 does not hold the last write");
}

/// Each test above, once per S3 server.
macro_rules! on_each_s3_server {
    ($($test:ident),* $(,)?) => {
        mod s3s_fs {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                super::$test(super::S3Kind::S3sFs).await
            })*
        }
        mod moto {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                super::$test(super::S3Kind::Moto).await
            })*
        }
    };
}

on_each_s3_server!(
    round_trips_keep_the_exact_bytes_at_every_size,
    put_then_get_on_another_replica_returns_same_bytes,
    versions_grow_with_each_write_and_get_returns_the_last,
    unknown_key_is_a_json_404,
    keys_with_slashes_and_reserved_characters_round_trip,
    get_after_the_cache_is_flushed_is_served_from_s3_and_recached,
    large_writes_survive_a_lost_script_cache_and_leave_no_staged_bytes,
);
