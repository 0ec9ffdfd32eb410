//! Fault injection on real processes: under concurrent writes and deletes, stop S3, kill a
//! worker, restart Redis, slow S3 down, fill Redis, poison a key. After each, every
//! acknowledged write must be in S3 and the backlog must be empty.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng as _;

use crate::helpers::*;
use crate::ledger::Ledger;
use crate::s3_proxy::S3Proxy;

/// Writers that PUT (80 %) and DELETE (20 %) random keys from `keys` through `apps` until
/// `stop` is set or `ops` operations each are done, recording every attempt in `ledger`.
pub async fn write_load(
    apps: Vec<Arc<TestApp>>,
    ledger: Ledger,
    keys: Vec<String>,
    writers: usize,
    ops: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (apps, ledger, keys, stop) =
                (apps.clone(), ledger.clone(), keys.clone(), stop.clone());
            tokio::spawn(async move {
                for i in 0..ops {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let app = &apps[(w + i) % apps.len()];
                    let (key, delete, size) = {
                        let mut rng = rand::rng();
                        (
                            keys[rng.random_range(0..keys.len())].clone(),
                            rng.random_bool(0.2),
                            rng.random_range(100..3000),
                        )
                    };
                    if delete {
                        let Ok(response) = app
                            .http
                            .delete(format!("{}/blobs/{}", app.address, encode_key(&key)))
                            .send()
                            .await
                        else {
                            ledger.record(&key, None, None);
                            continue;
                        };
                        match response.status().as_u16() {
                            200 => {
                                let body: serde_json::Value = response.json().await.unwrap();
                                ledger.record(&key, None, body["version"].as_u64());
                            }
                            404 => {}
                            _ => ledger.record(&key, None, None),
                        }
                    } else {
                        let data = random_bytes(size);
                        let sent = app
                            .http
                            .post(format!("{}/put/", app.address))
                            .json(&serde_json::json!({"key": key, "extension": "bin",
                                "data": blobproxy::domain::encode_base64(&data)}))
                            .send()
                            .await;
                        let acked = match sent {
                            Ok(r) if r.status() == 201 => {
                                r.json::<serde_json::Value>().await.unwrap()["version"].as_u64()
                            }
                            _ => None,
                        };
                        ledger.record(&key, Some(data), acked);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

pub fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}/{i}")).collect()
}

/// Waits for an empty backlog (nothing dirty, nothing queued), then checks the ledger.
pub async fn settle_and_verify(
    app: &TestApp,
    backends: &Backends,
    ledger: &Ledger,
    test: &str,
    faults: usize,
) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        let status = app.status().await;
        if status["dirty"] == 0 && status["queued_jobs"] == 0 {
            break status;
        }
        if Instant::now() > deadline {
            let mut redis = backends.redis.client().await;
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("*")
                .query_async(&mut redis)
                .await
                .unwrap_or_default();
            panic!(
                "backlog not empty after 90 s: {status}; Redis keys: {:?}; the queue: {}",
                &keys[..keys.len().min(40)],
                queue_state(&mut redis).await
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status["dead_letters"], 0, "{status}");
    let lost = ledger.lost_writes(&backends.s3).await;
    ledger.report(test, faults, lost.len());
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:#?}");
    assert!(ledger.acknowledged() > 0);
}

/// The job queue as apalis-redis keeps it, to tell a stuck job's state when a test fails:
/// waiting, scheduled for a retry, held by a worker, and which workers are registered.
async fn queue_state(redis: &mut redis::aio::MultiplexedConnection) -> String {
    async fn query(redis: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> String {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        match cmd.query_async::<redis::Value>(redis).await {
            Ok(value) => format!("{value:?}"),
            Err(e) => format!("error: {e}"),
        }
    }
    let queue = redis_layout().queue;
    let inflight = format!("{}*", queue.inflight);
    let mut out = String::new();
    for args in [
        &["LRANGE", &queue.active, "0", "9"][..],
        &["ZRANGE", &queue.scheduled, "0", "9", "WITHSCORES"],
        &["ZRANGE", &queue.workers, "0", "-1", "WITHSCORES"],
        &["KEYS", &inflight],
        &["TIME"],
    ] {
        out += &format!("{args:?} -> {}; ", query(redis, args).await);
    }
    out
}

pub fn flag() -> Arc<std::sync::atomic::AtomicBool> {
    Arc::new(std::sync::atomic::AtomicBool::new(false))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_outage_under_load_loses_nothing() {
    let mut backends = Backends::start().await;
    let settings = backends.settings();
    let app = Arc::new(TestApp::spawn(&settings).await);
    let _workers = [
        TestWorker::spawn(&settings).await,
        TestWorker::spawn(&settings).await,
    ];
    let ledger = Ledger::default();
    let stop = flag();
    let load = tokio::spawn(write_load(
        vec![app.clone()],
        ledger.clone(),
        keys("outage", 40),
        6,
        10_000,
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    backends.s3.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    backends.s3.restart().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();
    settle_and_verify(&app, &backends, &ledger, "s3 outage", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_killed_mid_upload_loses_nothing_and_its_jobs_come_back() {
    let backends = Backends::start().await;
    let proxy = S3Proxy::start(backends.s3.port).await;
    proxy.set_delay(Duration::from_millis(300)); // uploads are in flight when the kill lands
    let mut settings = backends.settings();
    settings.s3.endpoint = Some(proxy.endpoint());
    let app = Arc::new(TestApp::spawn(&settings).await);
    let dir = tempfile::tempdir().unwrap();
    let worker_env = [("BLOBPROXY_S3_ENDPOINT", proxy.endpoint())];
    let mut worker = BlobproxyProcess::spawn(
        &["worker"],
        &backends,
        &worker_env,
        &dir.path().join("w1.log"),
    );
    let ledger = Ledger::default();
    write_load(
        vec![app.clone()],
        ledger.clone(),
        keys("crash", 60),
        6,
        20,
        flag(),
    )
    .await;
    // Kill the worker while it holds leases (uploads in flight).
    let mut redis = backends.redis.client().await;
    eventually(Duration::from_secs(20), "an upload in flight", || {
        let mut redis = redis.clone();
        async move {
            let leases: Vec<String> = redis::cmd("KEYS")
                .arg(redis_layout().lease("*"))
                .query_async(&mut redis)
                .await
                .unwrap();
            (!leases.is_empty()).then_some(())
        }
    })
    .await;
    worker.signal("KILL");
    assert_eq!(
        worker.wait_exit(Duration::from_secs(5)).await,
        None,
        "killed by a signal"
    );
    let dirty: u64 = redis::cmd("ZCARD")
        .arg(redis_layout().dirty)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(dirty > 0, "the kill came too late to test anything");
    proxy.set_delay(Duration::ZERO);
    let started = Instant::now();
    let _worker2 = BlobproxyProcess::spawn(
        &["worker"],
        &backends,
        &worker_env,
        &dir.path().join("w2.log"),
    );
    settle_and_verify(&app, &backends, &ledger, "worker SIGKILL", 1).await;
    println!(
        "backlog of {dirty} drained {:?} after the replacement worker started",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restart_with_aof_loses_no_acknowledged_write() {
    let mut backends = Backends::start().await;
    backends.redis.stop();
    backends.redis =
        RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]).await;
    let settings = backends.settings();
    let app = Arc::new(TestApp::spawn(&settings).await);
    let _worker = TestWorker::spawn(&settings).await;
    let ledger = Ledger::default();
    let stop = flag();
    let load = tokio::spawn(write_load(
        vec![app.clone()],
        ledger.clone(),
        keys("aof", 40),
        6,
        100_000,
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = ledger.acknowledged();
    backends.redis.stop(); // SIGKILL: no chance to save anything beyond the AOF
    tokio::time::sleep(Duration::from_millis(500)).await;
    backends.redis.restart().await;
    // The service reconnects by itself: writes are acknowledged again.
    let resumed = eventually(
        Duration::from_secs(20),
        "writes acknowledged after the restart",
        || {
            let acked = ledger.acknowledged();
            async move { (acked > before + 50).then_some(acked) }
        },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();
    assert!(resumed > before);
    settle_and_verify(
        &app,
        &backends,
        &ledger,
        "redis SIGKILL + restart (AOF always)",
        1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overwrites_and_deletes_with_three_workers_and_slow_s3_end_in_the_last_acknowledged_state()
{
    let backends = Backends::start().await;
    let proxy = S3Proxy::start(backends.s3.port).await;
    proxy.set_delay(Duration::from_millis(40));
    let mut settings = backends.settings();
    settings.s3.endpoint = Some(proxy.endpoint());
    let apps = vec![
        Arc::new(TestApp::spawn(&settings).await),
        Arc::new(TestApp::spawn(&settings).await),
    ];
    let _workers = [
        TestWorker::spawn(&settings).await,
        TestWorker::spawn(&settings).await,
        TestWorker::spawn(&settings).await,
    ];
    let ledger = Ledger::default();
    write_load(apps.clone(), ledger.clone(), keys("hot", 5), 8, 40, flag()).await;
    settle_and_verify(
        &apps[0],
        &backends,
        &ledger,
        "overwrite+delete, 3 workers, slow S3",
        1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_redis_refuses_writes_cleanly_and_recovers_once_drained() {
    let backends = Backends::start_with_maxmemory("4mb").await;
    let settings = backends.settings();
    let app = TestApp::spawn(&settings).await;
    let ledger = Ledger::default();

    // No worker yet: every acknowledged blob stays dirty, and Redis may not evict a dirty
    // blob, so 400 x 64 KiB into 4 MiB must be refused long before the end.
    let mut refused = Vec::new();
    for i in 0..400 {
        let key = format!("full/{i}");
        let data = random_bytes(64 * 1024);
        let response = app.put(&key, "bin", &data).await;
        match response.status().as_u16() {
            201 => {
                let body: serde_json::Value = response.json().await.unwrap();
                ledger.record(&key, Some(data), body["version"].as_u64());
            }
            503 => {
                assert!(response.headers().contains_key("retry-after"));
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(body["code"], "cache_full", "{body}");
                refused.push(key);
                if refused.len() == 3 {
                    break;
                }
            }
            other => panic!("PUT answered {other}"),
        }
    }
    assert_eq!(refused.len(), 3, "Redis never filled up");
    assert!(ledger.acknowledged() > 0);
    // A refused write left nothing behind.
    for key in &refused {
        assert_eq!(
            app.get(key).await.status(),
            404,
            "{key} was refused but exists"
        );
    }

    // A worker drains the backlog into S3 on a full Redis (through its sweep, when the job
    // queue cannot even register it); blobs in S3 become evictable, so writes are taken
    // again. A client retries a 503 as Retry-After tells it to. This hung for good while
    // upload leases had a TTL: the full Redis evicted every lease the worker took.
    let _worker = TestWorker::spawn(&settings).await;
    for i in 0..20 {
        let key = format!("after/{i}");
        let data = random_bytes(64 * 1024);
        let (app, key_ref, data_ref) = (&app, &key, &data);
        let version = eventually(
            Duration::from_secs(60),
            "a write taken again once the backlog drained",
            || async move {
                let response = app.put(key_ref, "bin", data_ref).await;
                match response.status().as_u16() {
                    201 => {
                        let body: serde_json::Value = response.json().await.unwrap();
                        Some(body["version"].as_u64())
                    }
                    503 => None,
                    other => panic!("PUT answered {other}"),
                }
            },
        )
        .await;
        ledger.record(&key, Some(data), version);
    }
    for key in &refused {
        assert_eq!(app.get(key).await.status(), 404, "{key} came back");
    }
    settle_and_verify(
        &app,
        &backends,
        &ledger,
        "redis maxmemory 4mb",
        refused.len(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_s3_refuses_is_dead_lettered_without_holding_up_the_rest_and_can_be_replayed() {
    let backends = Backends::start().await;
    let proxy = S3Proxy::start(backends.s3.port).await;
    proxy.refuse(BUCKET, "poison/pill");
    let mut settings = backends.settings();
    settings.s3.endpoint = Some(proxy.endpoint());
    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;
    let ledger = Ledger::default();
    let pill = random_bytes(999);
    let body: serde_json::Value = app
        .put("poison/pill", "bin", &pill)
        .await
        .json()
        .await
        .unwrap();
    ledger.record("poison/pill", Some(pill.clone()), body["version"].as_u64());
    for i in 0..30 {
        let key = format!("healthy/{i}");
        let data = random_bytes(500);
        let body: serde_json::Value = app.put(&key, "", &data).await.json().await.unwrap();
        ledger.record(&key, Some(data), body["version"].as_u64());
    }
    let status = eventually(
        Duration::from_secs(30),
        "the poison key dead-lettered",
        || async {
            let status = app.status().await;
            (status["dead_letters"] == 1 && status["dirty"] == 1).then_some(status)
        },
    )
    .await;
    assert_eq!(status["dead_letter_sample"][0]["key"], "poison/pill");
    assert!(
        status["dead_letter_sample"][0]["error"]
            .as_str()
            .unwrap()
            .contains("AccessDenied")
    );
    assert!(status["oldest_dirty_age_secs"].as_f64().unwrap() >= 0.0);
    // The rest drained; the poison blob is still served from the cache, never dropped.
    for i in 0..30 {
        assert!(backends.s3.object(&format!("healthy/{i}")).await.is_some());
    }
    assert_eq!(app.get_bytes("poison/pill").await.0, pill);
    assert!(backends.s3.object("poison/pill").await.is_none());
    let refusals = proxy.refused_count();
    // The sweep leaves a dead letter alone.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        proxy.refused_count(),
        refusals,
        "a dead-lettered key was retried"
    );

    // The operator fixes S3 and replays.
    proxy.allow_all();
    let out = blobproxy_command(&backends)
        .arg("replay-dead-letters")
        .env("BLOBPROXY_S3_ENDPOINT", proxy.endpoint())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("re-queued 1"));
    settle_and_verify(
        &app,
        &backends,
        &ledger,
        "permanent S3 refusal of one key",
        refusals as usize,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn start_up_refuses_a_redis_that_could_evict_unsaved_blobs() {
    let mut backends = Backends::start().await;
    backends.redis.stop();
    backends.redis = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]).await;
    let out = blobproxy_command(&backends)
        .arg("serve")
        .env("BLOBPROXY_BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("maxmemory-policy") && stderr.contains("allkeys-lru"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_down_answers_are_retried_no_sooner_than_retry_after() {
    let backends = Backends::start().await;
    let proxy = S3Proxy::start(backends.s3.port).await;
    let mut settings = backends.settings();
    settings.s3.endpoint = Some(proxy.endpoint());
    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;
    // Each answer asks for 3 s; the drain's next attempt must wait at least that.
    proxy.slow_down(3, 3);
    let response = app.put("throttled", "", b"patience").await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    let version = body["version"].as_u64().unwrap();
    let object = eventually(Duration::from_secs(30), "throttled in S3", || {
        backends.s3.object_at("throttled", version)
    })
    .await;
    assert_eq!(object.data, b"patience");
    let times = proxy.put_times();
    assert!(times.len() >= 4, "{} PUTs reached S3", times.len());
    let gap = times[3] - times[2];
    assert!(
        gap >= Duration::from_secs(3),
        "retried {gap:?} after SlowDown asked for 3 s"
    );
    let ledger = Ledger::default();
    ledger.record("throttled", Some(b"patience".to_vec()), Some(version));
    settle_and_verify(&app, &backends, &ledger, "S3 SlowDown with Retry-After", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drain_job_refused_by_a_full_redis_is_reported_as_full_not_as_unavailable() {
    use blobproxy::queue::{DrainJob, QueueError};
    use blobproxy::service::ServiceError;
    let backends = Backends::start_with_maxmemory("2mb").await;
    let settings = backends.settings();
    let deps = blobproxy::startup::Dependencies::connect_with(&settings, Some(credentials()))
        .await
        .unwrap();
    // Fill Redis with what it may not evict (no TTL), as unsaved blobs are: large values until
    // one is refused, then ever smaller ones, so that no room is left for even a small job
    // (a refused 64 KiB value alone leaves up to that much free, enough for a job).
    let mut redis = backends.redis.client().await;
    let mut filled = 0;
    for size in [64 * 1024, 4 * 1024, 256, 16] {
        let filler = vec![b'x'; size];
        for _ in 0..10_000 {
            let set: redis::RedisResult<()> = redis::cmd("SET")
                .arg(format!("filler:{filled}"))
                .arg(&filler)
                .query_async(&mut redis)
                .await;
            filled += 1;
            if set.is_err() {
                break;
            }
        }
    }
    let refused: redis::RedisResult<()> = redis::cmd("SET")
        .arg("one-more")
        .arg("x")
        .query_async(&mut redis)
        .await;
    assert!(refused.is_err(), "Redis never filled up ({filled} values)");

    let pushed = deps.queue.push(DrainJob::one("a/key".into(), 1)).await;
    let error = pushed.expect_err("a full Redis queued the job");
    assert!(matches!(error, QueueError::Full(_)), "{error:?}");
    // What the service answers (for `replay-dead-letters` and `/status`): Redis is full,
    // retry later; not "Redis is unavailable".
    let answer = ServiceError::from(error);
    assert!(matches!(answer, ServiceError::RedisFull(_)), "{answer:?}");

    // Redis itself is reachable: a read of the queue works and says nothing was queued.
    assert_eq!(deps.queue.pending().await.unwrap(), 0);
}
