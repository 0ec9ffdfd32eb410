//! Writes that name their request (`Idempotency-Key`): applied once, a repeat answered with the
//! first one's version; and through the real nginx, a raw PUT that nginx resends to another
//! replica after the first died mid-request is answered, not written twice.

use std::time::Duration;

use crate::helpers::*;
use crate::topology::{Dns, doomed_and_survivor, nginx_in_front};

/// A raw PUT of `data` to `key` named `id`.
async fn put_named(app: &TestApp, key: &str, id: &str, data: &[u8]) -> reqwest::Response {
    app.http
        .put(format!("{}/blobs/{}", app.address, encode_key(key)))
        .header("Idempotency-Key", id)
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
}

/// A raw GET of `key`: its ETag and bytes.
async fn raw_read(app: &TestApp, key: &str) -> (String, Vec<u8>) {
    let url = format!("{}/blobs/{}", app.address, encode_key(key));
    let response = app.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {key}");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    (etag, response.bytes().await.unwrap().to_vec())
}

async fn version_of(response: reqwest::Response) -> u64 {
    let body: serde_json::Value = response.json().await.unwrap();
    body["version"].as_u64().unwrap_or_else(|| panic!("{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_that_names_its_request_is_applied_once_on_any_replica() {
    let backends = Backends::start().await;
    let settings = backends.settings();
    let (one, two) = tokio::join!(TestApp::spawn(&settings), TestApp::spawn(&settings));
    let data = random_bytes(500);

    let first = put_named(&one, "named/raw", "req-1", &data).await;
    assert_eq!(first.status(), 201);
    assert!(!first.headers().contains_key("idempotent-replayed"));
    let version = version_of(first).await;
    // The same request again, on the other replica: the first answer, nothing written.
    let again = put_named(&two, "named/raw", "\"req-1\"", &data).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["etag"], format!("\"{version}\""));
    assert_eq!(version_of(again).await, version);
    assert_eq!(
        raw_read(&one, "named/raw").await,
        (format!("\"{version}\""), data.clone())
    );

    // The same request key for other bytes, or another key: 422, and nothing changes.
    for (key, bytes) in [("named/raw", &b"other"[..]), ("named/elsewhere", &data[..])] {
        let reused = put_named(&two, key, "req-1", bytes).await;
        assert_eq!(reused.status(), 422, "{key}");
        let body: serde_json::Value = reused.json().await.unwrap();
        assert_eq!(body["code"], "idempotency_key_reused", "{body}");
    }
    assert_eq!(raw_read(&one, "named/raw").await.1, data);
    assert_eq!(one.get("named/elsewhere").await.status(), 404);
    // A key that is not 1 to 255 visible ASCII characters: 400, nothing written.
    for bad in ["a b", &"x".repeat(256)] {
        let refused = put_named(&one, "named/bad", bad, b"x").await;
        assert_eq!(refused.status(), 400);
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["code"], "invalid_idempotency_key", "{body}");
    }
    assert_eq!(one.get("named/bad").await.status(), 404);

    // The JSON write, and a delete repeated after the key is gone: each answered as first.
    let json_put = |app: &TestApp| {
        app.http
            .post(format!("{}/put/", app.address))
            .header("Idempotency-Key", "req-json")
            .json(&serde_json::json!({"key": "named/json", "data": "aGk="}))
            .send()
    };
    let first = json_put(&one).await.unwrap();
    assert_eq!(first.status(), 201);
    let version = version_of(first).await;
    let again = json_put(&two).await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(version_of(again).await, version);
    let delete = |app: &TestApp| {
        app.http
            .delete(format!("{}/blobs/named/json", app.address))
            .header("Idempotency-Key", "req-delete")
            .send()
    };
    let deleted = delete(&two).await.unwrap();
    assert_eq!(deleted.status(), 200);
    let version = version_of(deleted).await;
    let again = delete(&one).await.unwrap();
    assert_eq!(again.status(), 200, "a repeated delete is no 404");
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(version_of(again).await, version);
    // A delete that names no request is still a 404 for a key that is gone.
    assert_eq!(one.delete("named/json").await.status(), 404);
}

/// The randomized run's finding: nginx resends a raw PUT (idempotent in HTTP) to another
/// replica when the first dies before it answers. The second replica must answer with the
/// version the first one wrote, not write the bytes again as a newer version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_put_nginx_resends_after_its_replica_died_is_answered_not_written_twice() {
    let backends = Backends::start().await;
    let proxy = crate::s3_proxy::S3Proxy::start(backends.s3.port).await;
    let dir = tempfile::tempdir().unwrap();
    let wc_timeout = [("BLOBPROXY_WC_TIMEOUT_SECS", "30".to_owned())];
    let (doomed, _survivor, _worker, web_port) =
        doomed_and_survivor(&backends, &proxy, dir.path(), &wc_timeout).await;
    // Both replicas in DNS, before the write: nginx gives a request as many tries as it
    // knows replicas when it starts.
    let dns = Dns::start(dir.path(), &["127.0.0.2", "127.0.0.3"]);
    wait_for_addr(&format!("127.0.0.1:{}", dns.port), "dnsmasq").await;
    let (_nginx, base) = nginx_in_front(dir.path(), &dns, web_port).await;
    let http = reqwest::Client::new();
    let served_by = || async {
        let response = http.get(format!("{base}/healthz")).send().await.ok()?;
        let by = response
            .headers()
            .get("x-served-by")?
            .to_str()
            .ok()?
            .to_owned();
        (response.status() == 200).then_some(by)
    };
    // nginx takes the replicas in turn: after one served by the survivor, the next request
    // goes to the doomed replica.
    eventually(
        Duration::from_secs(20),
        "nginx finding both replicas",
        || async { (served_by().await? == "survivor").then_some(()) },
    )
    .await;

    // S3 answers after 5 s from now, so a `?wc=1` write is still in flight at its replica
    // (written to Redis, waiting for S3) when that replica dies. Small enough to arrive with
    // its headers: nginx holds such a body and may resend it (a body it streams to the
    // replica, `proxy_request_buffering off`, it cannot).
    proxy.set_delay(Duration::from_secs(5));
    let data = random_bytes(200);
    let in_flight = tokio::spawn(
        http.put(format!("{base}/blobs/resent?wc=1"))
            .body(data.clone())
            .send(),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let written = redis_layout().record("resent");
    let mut redis = backends.redis.client().await;
    let version: Option<String> = redis::cmd("HGET")
        .arg(&written)
        .arg(blobproxy::cache::layout::record::VERSION)
        .query_async(&mut redis)
        .await
        .unwrap();
    let version: u64 = version
        .expect("the doomed replica wrote the blob")
        .parse()
        .unwrap();
    assert!(
        !in_flight.is_finished(),
        "the write answered before the kill"
    );
    doomed.signal("KILL");

    // nginx resends the PUT to the survivor, which answers with the doomed replica's version.
    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!(answer.status(), 201);
    assert_eq!(answer.headers()["x-served-by"], "survivor");
    assert_eq!(answer.headers()["idempotent-replayed"], "true");
    assert_eq!(version_of(answer).await, version);
    let stored = backends.s3.object("resent").await.expect("in S3 (wc=1)");
    assert_eq!((stored.data, stored.version), (data.clone(), version));
    let read = http
        .get(format!("{base}/blobs/resent"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.headers()["etag"], format!("\"{version}\""));
    assert_eq!(read.bytes().await.unwrap(), data);
}
