//! The drain's known holes, each closed as a class: keys S3 keeps failing for cost only their
//! own retries, keys an older version's rules allowed go to the dead letters, and the sweep's
//! "no job" warning fires only for a job that was really lost.

use std::time::{Duration, Instant};

use futures::StreamExt as _;

use crate::durability::{keys, settle_and_verify};
use crate::helpers::*;
use crate::ledger::Ledger;
use crate::s3_proxy::S3Proxy;

/// PUTs `count` fresh blobs under `prefix/<i>`, 16 at a time, recording each in `ledger`.
async fn put_many(app: &TestApp, ledger: &Ledger, prefix: &str, count: usize) {
    futures::stream::iter(keys(prefix, count))
        .map(|key| async move {
            let data = random_bytes(300);
            let response = app.put(&key, "", &data).await;
            assert_eq!(response.status(), 201, "PUT {key}");
            let body: serde_json::Value = response.json().await.unwrap();
            ledger.record(&key, Some(data), body["version"].as_u64());
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_s3_keeps_failing_for_cost_only_their_own_retries_and_drain_once_it_takes_them() {
    let backends = Backends::start().await;
    let proxy = S3Proxy::start(backends.s3.port).await;
    let mut settings = backends.settings();
    settings.s3.endpoint = Some(proxy.endpoint());
    // As many failing keys as the worker has slots: before, they held every slot for ever.
    settings.worker.concurrency = 4;
    settings.worker.retry_max = Duration::from_secs(3);
    let poisoned = keys("poisoned", 4);
    for key in &poisoned {
        proxy.refuse_with(BUCKET, key, 500, "InternalError");
    }
    let app = TestApp::spawn(&settings).await;
    let worker = TestWorker::spawn(&settings).await;
    let ledger = Ledger::default();
    put_many(&app, &ledger, "poisoned", 4).await;
    eventually(
        Duration::from_secs(20),
        "S3 failing each poisoned key",
        || std::future::ready((proxy.refused_count() >= 4).then_some(())),
    )
    .await;

    let started = Instant::now();
    put_many(&app, &ledger, "healthy", 1000).await;
    let status = app
        .status_when(
            Duration::from_secs(60),
            "every healthy write in S3, only the poisoned keys dirty",
            |status| status["dirty"] == 4 && status["failing_keys"] == 4,
        )
        .await;
    println!(
        "1000 healthy writes put and drained past 4 failing keys in {:?}",
        started.elapsed()
    );
    for i in (0..1000).step_by(97) {
        let key = format!("healthy/{i}");
        assert!(backends.s3.object(&key).await.is_some(), "{key} not in S3");
    }
    // Reported: how many, for how long, and why.
    assert!(
        status["failing_for_secs"].as_f64().unwrap() > 0.0,
        "{status}"
    );
    let sample = status["failing_sample"].as_array().unwrap();
    let mut failing: Vec<&str> = sample.iter().map(|f| f["key"].as_str().unwrap()).collect();
    failing.sort_unstable();
    assert_eq!(
        failing,
        poisoned.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(
        sample[0]["error"]
            .as_str()
            .unwrap()
            .contains("InternalError"),
        "{status}"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("\nblobproxy_failing_keys 4\n"),
        "{metrics}"
    );
    assert!(metrics.contains("\nblobproxy_oldest_failing_key_age_seconds "));
    // Still readable from the cache meanwhile.
    assert_eq!(app.get(&poisoned[0]).await.status(), 200);

    // Retried on their backoff, not in a loop: each turn is at most 3 requests, at most one
    // turn per key every 3 s (the cap) once the backoff has grown.
    let refusals = proxy.refused_count();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let retried = proxy.refused_count() - refusals;
    assert!(retried > 0, "the failing keys were not retried");
    // At most 5 turns a key in 7 s (the sweep looks every 2 s), of at most 3 requests.
    assert!(
        retried <= 4 * 5 * 3,
        "{retried} requests in 7 s: not backing off"
    );
    // The count survives the worker: a new one goes on from it (once the lease of a turn the
    // stopped worker left midway has expired, within 10 s).
    worker.stop().await;
    let attempts_before = turns_of(&app, &poisoned[0]).await;
    let _worker = TestWorker::spawn(&settings).await;
    eventually(
        Duration::from_secs(40),
        "the new worker's turn counted on top of the old ones",
        || async { (turns_of(&app, &poisoned[0]).await > attempts_before).then_some(()) },
    )
    .await;

    // S3 takes them again: they drain on their next turn, and nothing is failing any more.
    proxy.allow_all();
    settle_and_verify(&app, &backends, &ledger, "keys S3 kept failing for", 4).await;
    let status = app.status().await;
    assert_eq!(status["failing_keys"], 0, "{status}");
    assert!(status["failing_for_secs"].is_null(), "{status}");
}

/// How many turns of `key` failed, as `/status` reports them.
async fn turns_of(app: &TestApp, key: &str) -> u64 {
    let status = app.status().await;
    status["failing_sample"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == key)
        .map(|f| f["attempts"].as_u64().unwrap())
        .unwrap_or_else(|| panic!("{key} is not failing: {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_an_earlier_version_allowed_are_dead_lettered_with_the_reason_and_can_be_moved() {
    use blobproxy::cache::layout::record;
    use redis::AsyncCommands as _;
    let backends = Backends::start().await;
    let settings = backends.settings();
    let deps = blobproxy::startup::Dependencies::connect_with(&settings, Some(credentials()))
        .await
        .unwrap();
    let layout = redis_layout();
    let mut redis = backends.redis.client().await;
    let long_segment = format!("old/{}", "x".repeat(300));
    let refused = [
        ("   ", "only whitespace"),
        ("old/\u{FFFE}", "U+FFFE"),
        (long_segment.as_str(), "longer than 255 bytes"),
    ];
    let ledger = Ledger::default();
    let valid = keys("old/valid", 20);
    let written: Vec<(&str, Vec<u8>)> = refused
        .iter()
        .map(|(key, _)| *key)
        .chain(valid.iter().map(String::as_str))
        .map(|key| (key, random_bytes(200)))
        .collect();
    // Dirty records with a drain job each, as an earlier version's PUT left them.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for (i, (key, data)) in written.iter().enumerate() {
        let version = now_ms * 1000 + i as u64;
        let _: () = redis
            .hset_multiple(
                layout.record(key),
                &[
                    (record::KIND, record::BLOB.as_bytes()),
                    (record::DATA, data.as_slice()),
                    (record::EXTENSION, b""),
                    (record::CONTENT_TYPE, b"application/octet-stream"),
                    (record::VERSION, version.to_string().as_bytes()),
                    (record::STATE, record::DIRTY.as_bytes()),
                ],
            )
            .await
            .unwrap();
        let _: () = redis.zadd(&layout.dirty, key, now_ms).await.unwrap();
        let _: () = redis.zadd(&layout.dirty_by_key, key, 0).await.unwrap();
        let job = blobproxy::queue::DrainJob::one(key.to_string(), version);
        deps.queue.push(job).await.unwrap();
        if !key.starts_with(' ') && !key.contains('\u{FFFE}') && key.len() < 300 {
            ledger.record(key, Some(data.clone()), Some(version));
        }
    }

    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;
    let status = app
        .status_when(
            Duration::from_secs(30),
            "the valid keys drained, the refused ones dead-lettered",
            |status| status["dead_letters"] == 3 && status["dirty"] == 3,
        )
        .await;
    for (key, why) in &refused {
        let letter = status["dead_letter_sample"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["key"] == *key)
            .unwrap_or_else(|| panic!("{key:?} is not dead-lettered: {status}"));
        let error = letter["error"].as_str().unwrap();
        assert!(
            error.contains("this version's key rules") && error.contains(why),
            "{key:?}: {error}"
        );
    }
    for key in &valid {
        assert!(backends.s3.object(key).await.is_some(), "{key} not in S3");
    }
    // Parked, not retried in a loop: nothing changes while nobody decides.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = app.status().await;
    assert_eq!(
        (later["dead_letters"].clone(), later["dirty"].clone()),
        (3.into(), 3.into())
    );

    // The operator reads one out...
    let bytes_of = |key: &str| written.iter().find(|(k, _)| *k == key).unwrap().1.clone();
    let out = succeeds(blobproxy_command(&backends).args(["dead-letters", "export", "   "]));
    assert_eq!(out.stdout, bytes_of("   "));
    // ...moves another under a valid key, where it drains as any write...
    let out = succeeds(blobproxy_command(&backends).args([
        "dead-letters",
        "move",
        "old/\u{FFFE}",
        "old/renamed",
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("moved"));
    let renamed = eventually(Duration::from_secs(20), "old/renamed in S3", || {
        backends.s3.object("old/renamed")
    })
    .await;
    assert_eq!(renamed.data, bytes_of("old/\u{FFFE}"));
    // ...and a key that is no dead letter is refused in one sentence, changing nothing.
    let out = blobproxy_command(&backends)
        .args(["dead-letters", "move", "old/valid/1", "old/other"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no blob with key \"old/valid/1\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = app
        .status_when(Duration::from_secs(10), "two dead letters left", |status| {
            status["dead_letters"] == 2 && status["dirty"] == 2
        })
        .await;
    // A replay gives the two left another drain, which parks them again: never dropped.
    let out = succeeds(blobproxy_command(&backends).arg("replay-dead-letters"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("re-queued 2"),
        "stdout: {}\nstderr: {}\nstatus before: {status}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    app.status_when(
        Duration::from_secs(20),
        "parked again after the replay",
        |status| status["dead_letters"] == 2 && status["dirty"] == 2,
    )
    .await;
    assert_eq!(status["dirty"], 2);
    let lost = ledger.lost_writes(&backends.s3).await;
    assert!(lost.is_empty(), "{lost:?}");
}

/// `blobproxy_orphaned_keys_total` as `/metrics` shows it.
async fn orphans_counted(app: &TestApp) -> u64 {
    let metrics = app.metrics().await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("blobproxy_orphaned_keys_total "))
        .unwrap_or_else(|| panic!("no orphan counter in {metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_waiting_in_a_long_queue_are_not_taken_for_lost_jobs_but_a_lost_job_is() {
    use redis::AsyncCommands as _;
    let backends = Backends::start().await;
    let proxy = S3Proxy::start(backends.s3.port).await;
    // A drain slower than the writes: two uploads at a time, each 100 ms away.
    proxy.set_delay(Duration::from_millis(100));
    let mut settings = backends.settings();
    settings.s3.endpoint = Some(proxy.endpoint());
    settings.worker.concurrency = 2;
    let app = TestApp::spawn(&settings).await;
    let worker = TestWorker::spawn(&settings).await;
    let ledger = Ledger::default();
    put_many(&app, &ledger, "queued", 300).await;
    let (mut longest_wait, deadline) = (0.0f64, Instant::now() + Duration::from_secs(120));
    loop {
        let status = app.status().await;
        longest_wait = longest_wait.max(status["oldest_dirty_age_secs"].as_f64().unwrap_or(0.0));
        if status["dirty"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not drained in 120 s: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The case in question happened: keys waited longer than the sweep's 10 s...
    assert!(
        longest_wait > 11.0,
        "the longest wait was only {longest_wait} s"
    );
    // ...and none was taken for a key whose job was lost.
    assert_eq!(orphans_counted(&app).await, 0);

    // A job that really goes missing (removed from the queue before any worker saw it) is
    // found by the sweep, counted, and its key drained all the same.
    worker.stop().await;
    proxy.set_delay(Duration::ZERO);
    put_many(&app, &ledger, "lost", 1).await;
    let mut redis = backends.redis.client().await;
    let _: () = redis.del(&redis_layout().queue.active).await.unwrap();
    let _worker = TestWorker::spawn(&settings).await;
    eventually(Duration::from_secs(30), "the lost job's key in S3", || {
        backends.s3.object("lost/0")
    })
    .await;
    assert_eq!(orphans_counted(&app).await, 1);
    settle_and_verify(&app, &backends, &ledger, "a long queue, then a lost job", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_another_version_wrote_is_set_aside_and_its_key_drained_by_the_sweep() {
    use redis::AsyncCommands as _;
    let backends = Backends::start().await;
    let settings = backends.settings();
    let app = TestApp::spawn(&settings).await;
    let data = random_bytes(300);
    let written: serde_json::Value = app
        .put("upgrade/job", "", &data)
        .await
        .json()
        .await
        .unwrap();
    // The write's job, rewritten as a later version might write it.
    let layout = redis_layout();
    let mut redis = backends.redis.client().await;
    let jobs: Vec<String> = redis.lrange(&layout.queue.active, 0, -1).await.unwrap();
    assert_eq!(jobs.len(), 1);
    let _: () = redis
        .hset(
            &layout.queue.data,
            &jobs[0],
            r#"{"keys":["upgrade/job"],"v":9}"#,
        )
        .await
        .unwrap();
    let _worker = TestWorker::spawn(&settings).await;
    let version = written["version"].as_u64().unwrap();
    let stored = eventually(Duration::from_secs(40), "upgrade/job in S3", || {
        backends.s3.object_at("upgrade/job", version)
    })
    .await;
    assert_eq!(stored.data, data);
    // Drained by the sweep, as a key whose job was lost; the worker kept draining.
    assert_eq!(orphans_counted(&app).await, 1);
    let response = app.put("upgrade/after", "", b"next").await;
    let version = response.json::<serde_json::Value>().await.unwrap()["version"]
        .as_u64()
        .unwrap();
    eventually(Duration::from_secs(20), "upgrade/after in S3", || {
        backends.s3.object_at("upgrade/after", version)
    })
    .await;
}
