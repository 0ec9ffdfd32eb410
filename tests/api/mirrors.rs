//! Mirror stores kept in step with the primary one, on two different real S3 servers: moto as
//! the primary, s3s-fs as the mirror (it keeps its objects across a restart, as a real
//! second site would).

use std::time::Duration;

use blobproxy::config::{MirrorSettings, Settings};

use crate::helpers::*;

/// `backends`' settings with `mirror` as the mirror store named `second`.
pub fn with_mirror(backends: &Backends, mirror: &S3Server) -> Settings {
    let mut settings = backends.settings();
    // A copy that failed is tried again within 2 s, not the default 30.
    settings.worker.retry_max = Duration::from_secs(2);
    let mut s3 = settings.s3.clone();
    s3.endpoint = Some(mirror.endpoint());
    settings.mirror_stores = vec![MirrorSettings {
        name: "second".into(),
        s3,
        // The test servers' keys, as the primary's.
        keys: None,
    }];
    settings
}

/// The mirror's lag as `/status` reports it: (keys behind, keys failing).
pub async fn lag(app: &TestApp) -> (u64, u64) {
    let status = app.status().await;
    let mirror = &status["mirrors"][0];
    assert_eq!(mirror["name"], "second", "{status}");
    (
        mirror["behind"].as_u64().unwrap(),
        mirror["failing"].as_u64().unwrap(),
    )
}

pub async fn caught_up(app: &TestApp, within: Duration) {
    eventually(within, "the mirror to catch up", || async {
        (lag(app).await == (0, 0)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_write_and_delete_reaches_the_mirror_at_the_version_the_primary_holds() {
    let backends = Backends::start_on(S3Kind::Moto).await;
    let mirror = S3Server::start_kind(S3Kind::S3sFs).await;
    let settings = with_mirror(&backends, &mirror);
    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;

    // Overwrites racing the drain and the copier, then deletes of some keys.
    let mut last = std::collections::BTreeMap::new();
    for round in 0..4 {
        let writes = (0..12).map(|i| {
            let app = &app;
            async move {
                let key = format!("mirrored/{i}");
                let data = format!("round {round} of {i}").into_bytes();
                let response = app.put(&key, "txt", &data).await;
                assert_eq!(response.status(), 201);
                let body: serde_json::Value = response.json().await.unwrap();
                (key, (body["version"].as_u64().unwrap(), data))
            }
        });
        last.extend(futures::future::join_all(writes).await);
    }
    for i in 0..3 {
        let key = format!("mirrored/{i}");
        assert_eq!(app.delete(&key).await.status(), 200);
        last.remove(&key);
    }
    backends.wait_until_drained(Duration::from_secs(30)).await;
    caught_up(&app, Duration::from_secs(30)).await;

    for i in 0..12 {
        let key = format!("mirrored/{i}");
        let (primary, copy) = (backends.s3.object(&key).await, mirror.object(&key).await);
        match last.get(&key) {
            Some((version, data)) => {
                let copy = copy.unwrap_or_else(|| panic!("{key} is not in the mirror"));
                assert_eq!((&copy.data, copy.version), (data, *version), "{key}");
                assert_eq!(copy.extension, "txt");
                assert_eq!(copy.content_type, primary.unwrap().content_type);
            }
            None => {
                assert!(primary.is_none() && copy.is_none(), "{key} was deleted");
            }
        }
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("blobproxy_mirror_behind_keys{mirror=\"second\"} 0"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mirror_that_was_down_catches_up_and_its_backlog_holds_no_blob_bytes() {
    let backends = Backends::start_on(S3Kind::Moto).await;
    let mut mirror = S3Server::start_kind(S3Kind::S3sFs).await;
    let settings = with_mirror(&backends, &mirror);
    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;

    mirror.stop();
    let blob = random_bytes(10 * 1024);
    for i in 0..40 {
        assert_eq!(app.put(&format!("away/{i}"), "", &blob).await.status(), 201);
    }
    // The primary has everything; the mirror is owed all of it, and says so.
    backends.wait_until_drained(Duration::from_secs(30)).await;
    let (behind, _) = lag(&app).await;
    assert_eq!(behind, 40);
    eventually(Duration::from_secs(20), "failed copies to show", || async {
        (lag(&app).await.1 > 0).then_some(())
    })
    .await;
    let status = app.status().await;
    assert!(status["mirrors"][0]["oldest_behind_secs"].as_f64().unwrap() > 0.0);
    // Every record is clean, so Redis may evict it: what the mirror is owed is key names and
    // versions, not the bytes (the copier reads those back from the primary store).
    let mut redis = backends.redis.client().await;
    for i in 0..40 {
        let ttl: i64 = redis::cmd("TTL")
            .arg(redis_layout().record(&format!("away/{i}")))
            .query_async(&mut redis)
            .await
            .unwrap();
        assert!(ttl > 0, "away/{i} is held in Redis for the mirror");
    }
    let owed = redis_layout().mirror("second");
    let versions: Vec<String> = redis::cmd("HVALS")
        .arg(&owed.want)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(versions.len(), 40);
    assert!(
        versions.iter().all(|v| v.parse::<u64>().is_ok()),
        "{versions:?}"
    );

    mirror.restart().await;
    caught_up(&app, Duration::from_secs(60)).await;
    for i in 0..40 {
        let copy = mirror.object(&format!("away/{i}")).await.unwrap();
        assert_eq!(copy.data, blob);
    }
}
