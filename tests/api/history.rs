//! A key's history on a versioned bucket (moto: s3s-fs keeps no versions): `GET
//! /history/<key>`, and reading one version with `?version=`.

use std::time::Duration;

use crate::helpers::*;

/// Redis and moto, a replica with history on, and a worker.
async fn versioned() -> (Backends, TestApp, TestWorker) {
    let backends = Backends::start_on(S3Kind::Moto).await;
    let mut settings = backends.settings();
    settings.s3.versioning = Versioning::On;
    let app = TestApp::spawn(&settings).await;
    let worker = TestWorker::spawn(&settings).await;
    (backends, app, worker)
}

async fn history(app: &TestApp, key: &str, query: &str) -> (u16, serde_json::Value) {
    let url = format!("{}/history/{}{query}", app.address, encode_key(key));
    let response = app.http.get(url).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// `(version, deleted, persisted)` of each entry, in the order listed.
fn entries(page: &serde_json::Value) -> Vec<(u64, bool, bool)> {
    page["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["version"].as_u64().unwrap(),
                e["deleted"].as_bool().unwrap(),
                e["persisted"].as_bool().unwrap(),
            )
        })
        .collect()
}

async fn put_version(app: &TestApp, key: &str, data: &[u8]) -> u64 {
    let response = app.put(key, "bin", data).await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    body["version"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_drained_write_is_listed_newest_first_and_reads_back_exactly() {
    let (backends, app, _worker) = versioned().await;
    let key = "history/doc";
    let mut written = Vec::new();
    for i in 0..10 {
        let data = random_bytes(100 + i * 37);
        let version = put_version(&app, key, &data).await;
        backends.wait_until_drained(Duration::from_secs(20)).await;
        written.push((version, data));
    }
    let (status, page) = history(&app, key, "").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["key"], key);
    let expected: Vec<_> = written
        .iter()
        .rev()
        .map(|(v, _)| (*v, false, true))
        .collect();
    assert_eq!(entries(&page), expected);
    for (entry, (_, data)) in page["versions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(written.iter().rev())
    {
        assert_eq!(entry["size"], data.len());
        assert_eq!(entry["extension"], "bin");
        assert!(
            entry["persisted_at"].as_str().unwrap().ends_with('Z'),
            "{entry}"
        );
    }
    assert!(page["next_cursor"].is_null());

    // Each version reads back byte-exact, as JSON and raw (the newest one from Redis, the
    // others from S3's versions).
    for (version, data) in &written {
        let url = format!("/get/{}?version={version}", encode_key(key));
        let body = app.get_json(&url).await;
        assert_eq!(body["version"].as_u64(), Some(*version), "{body}");
        let read = blobproxy::domain::decode_base64(body["data"].as_str().unwrap()).unwrap();
        assert!(read == *data, "JSON read of version {version} differs");
        let raw = app
            .http
            .get(format!(
                "{}/blobs/{}?version={version}",
                app.address,
                encode_key(key)
            ))
            .header("Range", "bytes=10-")
            .send()
            .await
            .unwrap();
        assert_eq!(raw.status(), 206);
        assert_eq!(raw.headers()["etag"], format!("\"{version}\""));
        assert_eq!(
            raw.bytes().await.unwrap(),
            data[10..],
            "raw read of {version}"
        );
    }
    // The newest version is still what a plain read answers: an old one was not re-cached.
    assert_eq!(app.get_bytes(key).await.0, written.last().unwrap().1);

    // Pages of 3 walk the same ten entries.
    let (mut walked, mut query) = (Vec::new(), "?limit=3".to_owned());
    loop {
        let (status, page) = history(&app, key, &query).await;
        assert_eq!(status, 200, "{page}");
        walked.extend(entries(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(walked, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_is_an_entry_and_a_version_waiting_in_redis_comes_first() {
    let (backends, app, worker) = versioned().await;
    let key = "history/deleted";
    let first = put_version(&app, key, b"first").await;
    backends.wait_until_drained(Duration::from_secs(20)).await;
    let deleted = app.delete(key).await;
    assert_eq!(deleted.status(), 200);
    let deleted: serde_json::Value = deleted.json().await.unwrap();
    backends.wait_until_drained(Duration::from_secs(20)).await;
    let after_delete = put_version(&app, key, b"after the delete").await;
    backends.wait_until_drained(Duration::from_secs(20)).await;
    let (status, page) = history(&app, key, "").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        entries(&page),
        [
            (after_delete, false, true),
            (deleted["version"].as_u64().unwrap(), true, true),
            (first, false, true)
        ]
    );

    // With no worker, the next write waits in Redis: listed first, not persisted.
    worker.stop().await;
    let waiting = put_version(&app, key, b"waiting").await;
    let (_, page) = history(&app, key, "").await;
    assert_eq!(entries(&page)[0], (waiting, false, false));
    assert!(page["versions"][0]["persisted_at"].is_null());
    assert_eq!(entries(&page)[1..].len(), 3);
    // And it reads back by its version, from Redis.
    let body = app.get_json(&format!("/get/{key}?version={waiting}")).await;
    assert_eq!(body["data"], blobproxy::domain::encode_base64(b"waiting"));
    // The delete's own version is no blob.
    let body = app
        .get_json(&format!("/get/{key}?version={}", deleted["version"]))
        .await;
    assert_eq!(body["code"], "version_not_found", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_or_key_that_is_not_kept_is_a_json_404() {
    let (backends, app, _worker) = versioned().await;
    let key = "history/missing";
    let version = put_version(&app, key, b"one").await;
    backends.wait_until_drained(Duration::from_secs(20)).await;
    for path in [
        format!("/get/{key}?version={}", version - 1),
        format!("/get/{key}?version={}", version + 1),
        format!("/get/history/never?version={version}"),
    ] {
        let body = app.get_json(&path).await;
        assert_eq!(body["code"], "version_not_found", "{path}: {body}");
    }
    let raw = app
        .http
        .get(format!("{}/blobs/{key}?version=1", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 404);
    let (status, body) = history(&app, "history/never", "").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    // A version that is not a number, or a cursor not handed out, is the client's error.
    let body = app.get_json(&format!("/get/{key}?version=abc")).await;
    assert_eq!(body["code"], "invalid_query");
    for cursor in ["zz", "bm90IG91cnM", "czM6PD4"] {
        let (status, body) = history(&app, key, &format!("?cursor={cursor}")).await;
        assert_eq!(status, 400, "cursor {cursor}: {body}");
        assert_eq!(body["code"], "invalid_query");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_versioning_history_is_one_clear_error_and_only_the_newest_version_reads() {
    let backends = Backends::start_on(S3Kind::Moto).await;
    // `auto` (the default): the bucket blobproxy created has no versioning.
    let settings = backends.settings();
    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;
    let old = put_version(&app, "plain", b"old").await;
    backends.wait_until_drained(Duration::from_secs(20)).await;
    let new = put_version(&app, "plain", b"new").await;
    backends.wait_until_drained(Duration::from_secs(20)).await;
    let (status, body) = history(&app, "plain", "").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("history_disabled"))
    );
    let body = app.get_json(&format!("/get/plain?version={old}")).await;
    assert_eq!(body["code"], "version_not_found");
    let body = app.get_json(&format!("/get/plain?version={new}")).await;
    assert_eq!(body["data"], blobproxy::domain::encode_base64(b"new"));

    // `auto` on a bucket that does keep versions turns history on.
    backends
        .s3
        .client()
        .put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let app = TestApp::spawn(&settings).await;
    let (status, body) = history(&app, "plain", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(entries(&body)[0], (new, false, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consecutive_writes_with_wc_1_each_reach_the_history() {
    // Without wc=1 a write overwritten before the drain never reaches S3 (README, History);
    // with it, each write answers once S3 has it, so each is a version of its own.
    let (_backends, app, _worker) = versioned().await;
    let key = "history/wc1";
    let mut versions = Vec::new();
    for i in 0..3u8 {
        let response = app
            .http
            .post(format!("{}/put/?wc=1", app.address))
            .json(&serde_json::json!({
                "key": key,
                "extension": "bin",
                "data": blobproxy::domain::encode_base64(&[i; 64]),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["persisted"], true, "{body}");
        versions.push(body["version"].as_u64().unwrap());
    }
    let (status, page) = history(&app, key, "").await;
    assert_eq!(status, 200, "{page}");
    let expected: Vec<_> = versions.iter().rev().map(|v| (*v, false, true)).collect();
    assert_eq!(entries(&page), expected);
    for (i, version) in versions.iter().enumerate() {
        let body = app.get_json(&format!("/get/{key}?version={version}")).await;
        assert_eq!(
            body["data"],
            blobproxy::domain::encode_base64(&[i as u8; 64])
        );
    }
}
