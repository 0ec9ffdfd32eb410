//! The worker: what lands in S3, under overwrites, several workers and an S3 outage.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_lands_the_exact_bytes_in_s3_with_content_type_and_extension() {
    let backends = Backends::start().await;
    let settings = backends.settings();
    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;
    let png = random_bytes(70_000);
    let body: serde_json::Value = app.put("img/cat", "png", &png).await.json().await.unwrap();
    let empty_version = {
        let body: serde_json::Value = app.put("empty", "", &[]).await.json().await.unwrap();
        body["version"].as_u64().unwrap()
    };
    let version = body["version"].as_u64().unwrap();
    let object = eventually(Duration::from_secs(20), "img/cat in S3", || {
        backends.s3.object_at("img/cat", version)
    })
    .await;
    assert!(object.data == png);
    assert_eq!(object.content_type, "image/png");
    assert_eq!(object.extension, "png");
    let empty = eventually(Duration::from_secs(20), "empty in S3", || {
        backends.s3.object_at("empty", empty_version)
    })
    .await;
    assert!(empty.data.is_empty());
    assert_eq!(empty.content_type, "application/octet-stream");
    assert_eq!(empty.version, empty_version);
    backends.wait_until_drained(Duration::from_secs(10)).await;
    // Clean blobs get the cache TTL; they were dirty (no TTL) before.
    let mut redis = backends.redis.client().await;
    let ttl: i64 = redis::cmd("TTL")
        .arg(redis_layout().record("img/cat"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(ttl > 0, "ttl {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dirty_blobs_never_expire() {
    let backends = Backends::start().await;
    let app = TestApp::spawn(&backends.settings()).await;
    assert_eq!(app.put("pending", "", b"abc").await.status(), 201);
    let mut redis = backends.redis.client().await;
    let ttl: i64 = redis::cmd("TTL")
        .arg(redis_layout().record("pending"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(ttl, -1, "a blob not yet in S3 must have no TTL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_overwrites_with_two_workers_leave_the_last_acknowledged_write_in_s3() {
    let backends = Backends::start().await;
    let settings = backends.settings();
    let apps = Arc::new([
        TestApp::spawn(&settings).await,
        TestApp::spawn(&settings).await,
    ]);
    let workers = [
        TestWorker::spawn(&settings).await,
        TestWorker::spawn(&settings).await,
    ];
    let keys = ["hot/a", "hot/b", "hot/c"];
    // 8 writers per key, 25 writes each, through both replicas, while both workers drain.
    let mut tasks = Vec::new();
    for writer in 0..8 {
        for key in keys {
            let apps = apps.clone();
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..25 {
                    let data = random_bytes(500 + (writer * 31 + i) % 300);
                    let response = apps[(writer + i) % 2].put(key, "bin", &data).await;
                    assert_eq!(response.status(), 201);
                    let body: serde_json::Value = response.json().await.unwrap();
                    acked.push((key, body["version"].as_u64().unwrap(), data));
                }
                acked
            }));
        }
    }
    // The last acknowledged write of a key is the one with the highest version.
    let mut last: HashMap<&str, (u64, Vec<u8>)> = HashMap::new();
    let mut count = 0;
    for task in tasks {
        for (key, version, data) in task.await.unwrap() {
            count += 1;
            if last.get(key).is_none_or(|(v, _)| version > *v) {
                last.insert(key, (version, data));
            }
        }
    }
    assert_eq!(count, 8 * 25 * keys.len());
    backends.wait_until_drained(Duration::from_secs(60)).await;
    for worker in workers {
        worker.stop().await;
    }
    for key in keys {
        let (version, data) = &last[key];
        let object = backends.s3.object(key).await.expect("object missing");
        assert_eq!(object.version, *version, "{key}: S3 holds an older version");
        assert!(
            object.data == *data,
            "{key}: S3 bytes differ from the last write"
        );
        assert_eq!(apps[0].get_bytes(key).await.0, *data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blobs_written_while_s3_is_down_all_arrive_once_it_is_back() {
    let mut backends = Backends::start().await;
    let settings = backends.settings();
    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;
    backends.s3.stop();
    let mut written = Vec::new();
    for i in 0..40 {
        let key = format!("outage/{i}");
        let data = random_bytes(1000 + i);
        let response = app.put(&key, "dat", &data).await;
        assert_eq!(response.status(), 201, "PUT must not need S3");
        // Readable at once while S3 is down.
        assert_eq!(app.get_bytes(&key).await.0, data);
        written.push((key, data));
    }
    // Long enough for the worker to fail and back off several times.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut redis = backends.redis.client().await;
    let dirty: u64 = redis::cmd("ZCARD")
        .arg(redis_layout().dirty)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(dirty, 40, "every blob must stay dirty while S3 is down");
    backends.s3.restart().await;
    backends.wait_until_drained(Duration::from_secs(60)).await;
    for (key, data) in written {
        let object = backends
            .s3
            .object(&key)
            .await
            .unwrap_or_else(|| panic!("{key} missing"));
        assert!(object.data == data, "{key}: bytes differ");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dirty_key_whose_job_was_lost_is_swept_into_s3() {
    let backends = Backends::start().await;
    let settings = backends.settings();
    let app = TestApp::spawn(&settings).await;
    assert_eq!(app.put("orphan", "", b"still here").await.status(), 201);
    // Simulate a crash between the cache write and the enqueue: drop every queued job and
    // age the dirty entry past the sweep's threshold.
    let mut redis = backends.redis.client().await;
    let jobs: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", redis_layout().shard.queue_name()))
        .query_async(&mut redis)
        .await
        .unwrap();
    for key in jobs {
        let _: () = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("ZADD")
        .arg(redis_layout().dirty)
        .arg(1)
        .arg("orphan")
        .query_async(&mut redis)
        .await
        .unwrap();
    let _worker = TestWorker::spawn(&settings).await;
    let object = eventually(Duration::from_secs(30), "orphan swept to S3", || {
        backends.s3.object("orphan")
    })
    .await;
    assert_eq!(object.data, b"still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_larger_than_lua_can_unpack_is_drained_through_the_queue() {
    // apalis-redis moves due scheduled jobs with one `unpack`, which fails past ~8000 jobs;
    // our jobs go straight to the active list, so a 9000-job backlog must drain normally.
    let backends = Backends::start().await;
    let settings = backends.settings();
    let deps = blobproxy::startup::Dependencies::connect_with(&settings, Some(credentials()))
        .await
        .unwrap();
    let service = deps.service(&settings);
    let ext = blobproxy::domain::Extension::parse("").unwrap();
    futures::future::join_all((0..9000).map(|i| {
        let service = service.clone();
        let ext = ext.clone();
        async move {
            let key = blobproxy::domain::BlobKey::parse(format!("backlog/{i}")).unwrap();
            service
                .put(key, &ext, "application/octet-stream", b"x", None)
                .await
                .unwrap();
        }
    }))
    .await;
    let app = TestApp::spawn(&settings).await;
    assert_eq!(app.status().await["queued_jobs"], 9000);
    let _worker = TestWorker::spawn(&settings).await;
    eventually(Duration::from_secs(120), "the queue to empty", || async {
        let status = app.status().await;
        (status["queued_jobs"] == 0 && status["dirty"] == 0).then_some(())
    })
    .await;
    assert_eq!(backends.s3.keys().await.len(), 9000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stall_watchdog_fires_only_when_jobs_wait_and_none_starts() {
    use blobproxy::jobs::worker::{Activity, stalled};
    let backends = Backends::start().await;
    let settings = backends.settings();
    let deps = blobproxy::startup::Dependencies::connect_with(&settings, Some(credentials()))
        .await
        .unwrap();
    let idle = Activity::default();
    let after = Duration::from_secs(1);
    // Nothing waits: an idle worker is not stalled.
    assert!(
        tokio::time::timeout(
            Duration::from_secs(3),
            stalled(&deps.queue, &idle, 16, after)
        )
        .await
        .is_err(),
        "fired on an empty queue"
    );
    // A job waits and no worker takes it (none runs here): stalled, soon after `after`.
    deps.queue
        .push(blobproxy::queue::DrainJob::one("stalled/job".into(), 1))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    tokio::time::timeout(
        Duration::from_secs(5),
        stalled(&deps.queue, &idle, 16, after),
    )
    .await
    .expect("did not fire while a job waited for 5 s");
    assert!(started.elapsed() >= after);
    // A worker with no free slot is saturated, not stalled.
    assert!(
        tokio::time::timeout(
            Duration::from_secs(3),
            stalled(&deps.queue, &idle, 0, after)
        )
        .await
        .is_err(),
        "fired on a worker with no free slot"
    );
    // And a real worker takes the job that waited.
    let _worker = TestWorker::spawn(&settings).await;
    eventually(
        Duration::from_secs(20),
        "the waiting job to run",
        || async { (deps.queue.ready().await.unwrap() == 0).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_byte_budget_keeps_large_blobs_from_all_uploading_at_once() {
    let backends = Backends::start().await;
    let proxy = crate::s3_proxy::S3Proxy::start(backends.s3.port).await;
    // Each upload takes at least this long, so uploads that the budget lets run together
    // arrive together, and those it holds back arrive a delay later.
    let delay = Duration::from_millis(400);
    proxy.set_delay(delay);
    let mut settings = backends.settings();
    settings.s3.endpoint = Some(proxy.endpoint());
    settings.worker.concurrency = 16;
    settings.worker.max_bytes = 1024 * 1024;
    let app = TestApp::spawn(&settings).await;
    // Four blobs of 600 KiB: two never fit in 1 MiB together, so they go one at a time.
    let blobs: Vec<Vec<u8>> = (0..4).map(|_| random_bytes(600 * 1024)).collect();
    for (i, blob) in blobs.iter().enumerate() {
        assert_eq!(app.put(&format!("big/{i}"), "", blob).await.status(), 201);
    }
    let _worker = TestWorker::spawn(&settings).await;
    backends.wait_until_drained(Duration::from_secs(30)).await;
    let mut arrivals = proxy.put_times();
    arrivals.sort();
    assert_eq!(arrivals.len(), 4, "one upload per blob");
    for pair in arrivals.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= delay,
            "two 600 KiB uploads within {gap:?}: the budget let both hold"
        );
    }
    for (i, blob) in blobs.iter().enumerate() {
        let object = backends.s3.object(&format!("big/{i}")).await.unwrap();
        assert!(object.data == *blob, "big/{i} differs in S3");
    }
}
