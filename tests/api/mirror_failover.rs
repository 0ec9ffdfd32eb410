//! What mirror stores give a client: a write concern that waits for every store, reads that
//! survive the primary store's outage (never at an older version than the deployment knows),
//! and copies a mirror refuses for good parked as dead letters until they are replayed.

use std::time::Duration;

use crate::helpers::*;
use crate::mirrors::{caught_up, lag, with_mirror};

async fn write(app: &TestApp, key: &str, data: &[u8], wc: &str) -> reqwest::Response {
    app.http
        .put(format!("{}/blobs/{}?wc={wc}", app.address, encode_key(key)))
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_concern_all_answers_once_every_store_has_the_write() {
    let backends = Backends::start_on(S3Kind::Moto).await;
    let mut mirror = S3Server::start_kind(S3Kind::S3sFs).await;
    let mut settings = with_mirror(&backends, &mirror);
    settings.server.wc_timeout = Duration::from_secs(2);
    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;

    // Answered only once both stores hold the write: no waiting after the answer.
    let response = write(&app, "everywhere", b"in both", "all").await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    let version = body["version"].as_u64().unwrap();
    assert_eq!(body["persisted"], true);
    assert_eq!(
        backends
            .s3
            .object_at("everywhere", version)
            .await
            .unwrap()
            .data,
        b"in both"
    );
    assert_eq!(
        mirror.object_at("everywhere", version).await.unwrap().data,
        b"in both"
    );
    // A delete too.
    let deleted = app
        .http
        .delete(format!("{}/blobs/everywhere?wc=all", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert!(backends.s3.object("everywhere").await.is_none());
    assert!(mirror.object("everywhere").await.is_none());

    // The mirror down: the primary gets the write, the mirror cannot, and the answer says
    // which store is missing it; the write stands and reaches the mirror once it is back.
    mirror.stop();
    let response = write(&app, "later", b"eventually in both", "all").await;
    assert_eq!(response.status(), 504);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "mirror_timeout", "{body}");
    assert!(body["msg"].as_str().unwrap().contains("second"), "{body}");
    let version = body["version"].as_u64().unwrap();
    assert_eq!(
        backends.s3.object_at("later", version).await.unwrap().data,
        b"eventually in both"
    );
    assert_eq!(app.get("later").await.status(), 200);
    // wc=1 does not wait for the mirror.
    assert_eq!(write(&app, "primary-only", b"p", "1").await.status(), 201);
    mirror.restart().await;
    caught_up(&app, Duration::from_secs(30)).await;
    assert_eq!(
        mirror.object_at("later", version).await.unwrap().data,
        b"eventually in both"
    );

    // Anything else is not a write concern, and writes nothing.
    let response = write(&app, "bogus", b"b", "2").await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "invalid_query");
    assert_eq!(app.get("bogus").await.status(), 404);
}

/// The store `X-Blob-Store` names, the version and the bytes of a raw GET.
async fn read(app: &TestApp, key: &str) -> (u16, String, Option<u64>, Vec<u8>) {
    let response = app
        .http
        .get(format!("{}/blobs/{}", app.address, encode_key(key)))
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let store = header("x-blob-store").unwrap_or_default();
    let version = header("x-blob-version").and_then(|v| v.parse().ok());
    let status = response.status().as_u16();
    (
        status,
        store,
        version,
        response.bytes().await.unwrap().to_vec(),
    )
}

/// Waits until Redis has let go of every record (clean records expire after the cache TTL),
/// so the next reads miss the cache.
async fn cache_emptied(backends: &Backends, keys: &[&str]) {
    let mut redis = backends.redis.client().await;
    eventually(
        Duration::from_secs(10),
        "the clean records to expire",
        || {
            let mut redis = redis.clone();
            async move {
                for key in keys {
                    let record = redis_layout().record(key);
                    let exists: bool = redis::cmd("EXISTS")
                        .arg(record)
                        .query_async(&mut redis)
                        .await
                        .unwrap();
                    if exists {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await;
    let _: () = redis::cmd("PING").query_async(&mut redis).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uncached_reads_fall_back_to_a_mirror_that_has_the_newest_version() {
    // Two s3s-fs servers: each keeps its objects across a restart, so either can be down
    // for a while and come back with what it had.
    let mut backends = Backends::start_on(S3Kind::S3sFs).await;
    let mut mirror = S3Server::start_kind(S3Kind::S3sFs).await;
    let mut settings = with_mirror(&backends, &mirror);
    settings.redis.cache_ttl = Duration::from_secs(1);
    let app = TestApp::spawn(&settings).await;
    let worker = TestWorker::spawn(&settings).await;

    for key in ["kept", "stale"] {
        assert_eq!(
            write(&app, key, format!("{key} 1").as_bytes(), "all")
                .await
                .status(),
            201
        );
    }
    let (_, store, _, _) = read(&app, "kept").await;
    assert_eq!(store, "cache");
    // `stale` gets a second version while the mirror is down: the primary has it, the
    // mirror keeps the first, and the copier is stopped before the mirror is back.
    mirror.stop();
    let response = write(&app, "stale", b"stale 2", "1").await;
    assert_eq!(response.status(), 201);
    worker.stop().await;
    mirror.restart().await;
    assert_eq!(lag(&app).await.0, 1);
    cache_emptied(&backends, &["kept", "stale"]).await;
    let (status, store, _, data) = read(&app, "kept").await;
    assert_eq!(
        (status, store.as_str(), data.as_slice()),
        (200, "primary", &b"kept 1"[..])
    );
    cache_emptied(&backends, &["kept"]).await;

    // The primary store down: `kept` comes from the mirror, at the version the primary had.
    backends.s3.stop();
    let (status, store, version, data) = read(&app, "kept").await;
    assert_eq!((status, store.as_str()), (200, "mirror:second"));
    assert_eq!(data, b"kept 1");
    assert_eq!(version, Some(mirror.object("kept").await.unwrap().version));
    // The JSON read says so too (now from the cache the mirror's read filled).
    let response = app.get("kept").await;
    assert_eq!(response.headers()["x-blob-store"], "cache");
    // `stale`: the mirror has an older version than the deployment knows of; never served.
    let (status, _, _, data) = read(&app, "stale").await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&data));
    let body: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(body["code"], "s3_unavailable");
    // Writes are still acknowledged, and reach both stores once the primary is back.
    assert_eq!(
        write(&app, "during", b"written while S3 was down", "0")
            .await
            .status(),
        201
    );
    backends.s3.restart().await;
    let _worker = TestWorker::spawn(&settings).await;
    backends.wait_until_drained(Duration::from_secs(30)).await;
    caught_up(&app, Duration::from_secs(30)).await;
    assert_eq!(mirror.object("stale").await.unwrap().data, b"stale 2");
    assert_eq!(
        mirror.object("during").await.unwrap().data,
        b"written while S3 was down"
    );
    assert!(
        app.metrics()
            .await
            .contains("blobproxy_mirror_reads_total{mirror=\"second\"} 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copies_the_mirror_refuses_for_good_are_dead_letters_until_replayed() {
    let backends = Backends::start_on(S3Kind::Moto).await;
    let mut mirror = S3Server::start_kind(S3Kind::S3sFs).await;
    let settings = with_mirror(&backends, &mirror);
    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;
    assert_eq!(write(&app, "first", b"1", "all").await.status(), 201);

    // The mirror now refuses our signature (a rotated key): 403, for every copy, for good.
    mirror.secret_key = Some("another-secret-key".into());
    mirror.restart().await;
    for i in 0..5 {
        let response = write(&app, &format!("refused/{i}"), b"r", "1").await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }
    let status = app
        .status_when(Duration::from_secs(30), "5 dead letters", |s| {
            s["mirrors"][0]["dead_letters"] == 5
        })
        .await;
    let mirror_status = &status["mirrors"][0];
    // Parked, not retried: none failing, all still behind.
    assert_eq!(
        (
            mirror_status["behind"].as_u64(),
            mirror_status["failing"].as_u64()
        ),
        (Some(5), Some(0)),
        "{status}"
    );
    assert!(
        app.metrics()
            .await
            .contains("blobproxy_mirror_dead_letters{mirror=\"second\"} 5")
    );
    // The drain is not held up: the primary has every write.
    assert_eq!(backends.s3.object("refused/4").await.unwrap().data, b"r");

    // Fixed, replayed: every key reaches the mirror.
    mirror.secret_key = None;
    mirror.restart().await;
    let mirrors = [
        ("BLOBPROXY_MIRRORS", "second".to_owned()),
        ("BLOBPROXY_MIRROR_SECOND_S3_ENDPOINT", mirror.endpoint()),
        ("BLOBPROXY_MIRROR_SECOND_S3_BUCKET", BUCKET.to_owned()),
    ];
    let out = succeeds(
        blobproxy_command(&backends)
            .arg("replay-dead-letters")
            .envs(mirrors),
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("re-queued 5 key(s) a mirror refused"),
        "{said}"
    );
    caught_up(&app, Duration::from_secs(30)).await;
    for i in 0..5 {
        assert_eq!(
            mirror.object(&format!("refused/{i}")).await.unwrap().data,
            b"r"
        );
    }
}
