//! The queue contract with apalis-redis (pinned exactly in Cargo.toml). Our scripts write
//! drain jobs in apalis-redis's format from inside the write's own script
//! (`src/queue/queue_job.lua`), and apalis's worker consumes them. These tests hold both sides
//! to it with apalis-redis's own public API, on one Redis server and on a Redis Cluster: a
//! job our scripts wrote is stored exactly as apalis's `push` stores one, apalis's worker runs
//! it and records it done, and what apalis leaves behind is what our vacuum removes. An
//! upgrade of apalis that changes the format fails here, not in a deployment.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use apalis::prelude::*;
use blobproxy::cache::BlobCache;
use blobproxy::config::Settings;
use blobproxy::domain::BlobKey;
use blobproxy::queue::{DrainJob, JobQueue, QueueKeys};
use blobproxy::redis_link::{self, RedisLink};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

use crate::cluster::Cluster;
use crate::helpers::*;

/// A queue, a cache and a raw connection (routed by key in a cluster) on `settings`' Redis.
async fn connect(settings: &Settings) -> (JobQueue, BlobCache, RedisLink) {
    let link = redis_link::connect(&settings.redis_target()).await.unwrap();
    let queue = JobQueue::new(link.clone(), Duration::from_millis(50));
    (queue, BlobCache::new(link.clone()), link)
}

/// The queue keys and apalis storage of `key`'s shard.
fn shard_of(link: &RedisLink, key: &str) -> (QueueKeys, usize) {
    let shard = link.keyspace().shard_of(key);
    (QueueKeys::of(shard), shard.index())
}

/// A job as Redis holds it: its data (JSON) and its meta hash.
async fn stored_job(
    link: &mut RedisLink,
    keys: &QueueKeys,
    id: &str,
) -> (serde_json::Value, HashMap<String, String>) {
    let data: String = redis::cmd("HGET")
        .arg(&keys.data)
        .arg(id)
        .query_async(link)
        .await
        .unwrap();
    let meta: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{}:{id}", keys.meta))
        .query_async(link)
        .await
        .unwrap();
    (serde_json::from_str(&data).unwrap(), meta)
}

async fn jobs_are_stored_as_apalis_stores_them(settings: &Settings) {
    let (queue, _, mut link) = connect(settings).await;
    let job = DrainJob::one("contract/a".into(), 1_700_000_000_000_001);
    let (keys, shard) = shard_of(&link, &job.key);
    // Ours: `enqueue.lua`, i.e. `queue_job.lua`, which every write script runs.
    queue.push(job.clone()).await.unwrap();
    // apalis's: its public `push`.
    let mut storage = queue.storages()[shard].clone();
    storage.push(job.clone()).await.unwrap();

    let ours: Vec<String> = redis::cmd("LRANGE")
        .arg(&keys.active)
        .arg(0)
        .arg(-1)
        .query_async(&mut link)
        .await
        .unwrap();
    // The one deliberate difference: apalis schedules a pushed job (for now) and moves due
    // jobs with one `unpack`, which fails past ~8,000 at once; ours go straight to the list
    // of jobs ready to run.
    let theirs: Vec<String> = redis::cmd("ZRANGE")
        .arg(&keys.scheduled)
        .arg(0)
        .arg(-1)
        .query_async(&mut link)
        .await
        .unwrap();
    assert_eq!((ours.len(), theirs.len()), (1, 1), "{ours:?} {theirs:?}");
    let (our_data, our_meta) = stored_job(&mut link, &keys, &ours[0]).await;
    let (their_data, their_meta) = stored_job(&mut link, &keys, &theirs[0]).await;
    assert_eq!(our_data, their_data, "the job's data differs from apalis's");
    assert_eq!(our_meta, their_meta, "the job's meta differs from apalis's");
    let decoded: DrainJob = serde_json::from_value(our_data).unwrap();
    assert_eq!(decoded, job);
}

/// Starts apalis's own worker (its public builder, as `blobproxy worker` does) on one shard's
/// queue; each job it runs is handed to the returned channel.
fn apalis_worker(
    queue: &JobQueue,
    shard: usize,
) -> (
    mpsc::UnboundedReceiver<DrainJob>,
    tokio::task::JoinHandle<Result<(), WorkerError>>,
) {
    async fn hand_over(
        job: DrainJob,
        to: Data<mpsc::UnboundedSender<DrainJob>>,
    ) -> Result<(), BoxDynError> {
        to.send(job)?;
        Ok(())
    }
    let (to, ran) = mpsc::unbounded_channel();
    let worker = WorkerBuilder::new(format!("contract-{shard}-{:x}", rand::random::<u64>()))
        .backend(queue.storages()[shard].clone())
        .data(to)
        .build(hand_over);
    (ran, tokio::spawn(worker.run()))
}

async fn apalis_runs_our_jobs_and_records_them_done(settings: &Settings) {
    let (queue, cache, mut link) = connect(settings).await;
    // One job written by a PUT's own script (`put.lua`), one by `enqueue.lua`; one key each.
    let written = cache
        .put(
            &BlobKey::parse("contract/put").unwrap(),
            "txt",
            "text/plain",
            b"x",
            None,
        )
        .await
        .unwrap();
    assert!(written.queued);
    let (keys, shard) = shard_of(&link, "contract/put");
    let pushed = DrainJob::one("contract/put".into(), written.version + 1);
    queue.push(pushed.clone()).await.unwrap();
    let ids: Vec<String> = redis::cmd("LRANGE")
        .arg(&keys.active)
        .arg(0)
        .arg(-1)
        .query_async(&mut link)
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);

    let (mut ran, running) = apalis_worker(&queue, shard);
    let mut jobs = Vec::new();
    for _ in 0..2 {
        let job = tokio::time::timeout(Duration::from_secs(30), ran.recv())
            .await
            .expect("apalis's worker ran no job of ours")
            .unwrap();
        jobs.push(job);
    }
    jobs.sort_by_key(|job| job.version);
    let from_put = DrainJob::one("contract/put".into(), written.version);
    assert_eq!(jobs, [from_put, pushed]);

    // apalis acknowledged both: their meta says Done and the done set holds their ids.
    eventually(Duration::from_secs(10), "both jobs recorded done", || {
        let (mut link, keys, ids) = (link.clone(), keys.clone(), ids.clone());
        async move {
            for id in &ids {
                let (_, meta) = stored_job(&mut link, &keys, id).await;
                let done: bool = redis::cmd("SISMEMBER")
                    .arg(&keys.done)
                    .arg(id)
                    .query_async(&mut link)
                    .await
                    .ok()?;
                if meta.get("status").map(String::as_str) != Some("Done") || !done {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    running.abort();

    // apalis's own vacuum drops their data and meta but keeps their ids in the done set
    // forever: the behaviour `JobQueue::vacuum_finished` works around.
    let mut storage = queue.storages()[shard].clone();
    use apalis_core::backend::Vacuum as _;
    assert_eq!(storage.vacuum().await.unwrap(), 2);
    let left = |link: RedisLink, keys: QueueKeys| async move {
        let mut link = link;
        let jobs: u64 = redis::cmd("HLEN")
            .arg(&keys.data)
            .query_async(&mut link)
            .await
            .unwrap();
        let done: u64 = redis::cmd("SCARD")
            .arg(&keys.done)
            .query_async(&mut link)
            .await
            .unwrap();
        (jobs, done)
    };
    assert_eq!(left(link.clone(), keys.clone()).await, (0, 2));
    queue.vacuum_finished().await.unwrap();
    assert_eq!(left(link.clone(), keys.clone()).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_jobs_are_stored_as_apalis_stores_them_on_one_server() {
    let backends = Backends::start().await;
    jobs_are_stored_as_apalis_stores_them(&backends.settings()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_jobs_are_stored_as_apalis_stores_them_on_a_cluster() {
    let cluster = Cluster::start().await;
    jobs_are_stored_as_apalis_stores_them(&cluster.settings()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_runs_the_jobs_our_scripts_write_on_one_server() {
    let backends = Backends::start().await;
    apalis_runs_our_jobs_and_records_them_done(&backends.settings()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_runs_the_jobs_our_scripts_write_on_a_cluster() {
    let cluster = Cluster::start().await;
    apalis_runs_our_jobs_and_records_them_done(&cluster.settings()).await;
}

/// Queues a job for `key` (into an empty queue) and overwrites what is stored of it with
/// `stored`; returns the shard of its queue.
async fn queue_stored_as(queue: &JobQueue, link: &mut RedisLink, key: &str, stored: &str) -> usize {
    let (keys, shard) = shard_of(link, key);
    queue.push(DrainJob::one(key.into(), 1)).await.unwrap();
    let ids: Vec<String> = redis::cmd("LRANGE")
        .arg(&keys.active)
        .arg(0)
        .arg(-1)
        .query_async(link)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(&keys.data)
        .arg(&ids[0])
        .arg(stored)
        .query_async(link)
        .await
        .unwrap();
    shard
}

/// What `blobproxy worker`'s restart loop (`jobs::worker::run`) works around: one job apalis
/// cannot read (here a job whose data is not JSON) ends apalis's whole worker with an error,
/// not that job alone, and the jobs it fetched with it run nowhere until apalis re-queues a
/// dead worker's jobs (the sweep drains their keys meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_apalis_cannot_read_ends_its_whole_worker() {
    let backends = Backends::start().await;
    let (queue, _, mut link) = connect(&backends.settings()).await;
    let shard = queue_stored_as(&queue, &mut link, "contract/poison", "not json").await;
    queue
        .push(DrainJob::one("contract/poison".into(), 2))
        .await
        .unwrap();

    let (mut ran, running) = apalis_worker(&queue, shard);
    let ended = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("apalis's worker kept running past a job it cannot read")
        .unwrap();
    let error = format!("{:?}", ended.unwrap_err());
    assert!(error.contains("CodecError"), "{error}");
    assert!(
        ran.try_recv().is_err(),
        "the worker ran a job before it ended"
    );
}

/// A job in another version's shape (JSON, but not ours) decodes as set aside, not as an
/// error: apalis's worker runs it (ours acknowledges it) and goes on with the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_in_another_versions_shape_is_set_aside_and_the_worker_goes_on() {
    let backends = Backends::start().await;
    let (queue, _, mut link) = connect(&backends.settings()).await;
    let other = r#"{"keys":["contract/other"],"v":7}"#;
    let shard = queue_stored_as(&queue, &mut link, "contract/other", other).await;
    let next = DrainJob::one("contract/other".into(), 2);
    queue.push(next.clone()).await.unwrap();

    let (mut ran, running) = apalis_worker(&queue, shard);
    let first = tokio::time::timeout(Duration::from_secs(30), ran.recv())
        .await
        .unwrap()
        .unwrap();
    let why = first.unreadable.clone().expect("decoded as set aside");
    assert!(
        why.contains("missing field `key`") && why.contains(r#""v":7"#),
        "{why}"
    );
    assert_eq!(first.keys().filter(|k| !k.is_empty()).count(), 0);
    let second = tokio::time::timeout(Duration::from_secs(30), ran.recv()).await;
    assert_eq!(second.unwrap().unwrap(), next);
    assert!(!running.is_finished());
    running.abort();
}

/// A TCP proxy to Redis at `redis_port` that holds Redis's replies while `hold` is set
/// (requests still pass): a Redis, or a link to it, that stops answering without closing.
async fn reply_holding_proxy(redis_port: u16, hold: Arc<AtomicBool>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", redis_port)).await else {
                return;
            };
            let ((mut from_client, mut to_client), (mut from_redis, mut to_redis)) =
                (client.into_split(), server.into_split());
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from_client, &mut to_redis).await;
            });
            let hold = hold.clone();
            tokio::spawn(async move {
                let mut reply = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = from_redis.read(&mut reply).await {
                    while hold.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    if to_client.write_all(&reply[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// What the stall watchdog in `jobs::worker` looks for: while Redis's reply to its fetch does
/// not come, apalis's worker has free slots, jobs wait, it starts none and reports nothing
/// (it heart-beats only between fetches); it goes on once the reply comes, and only the
/// connection's response timeout (30 s) would end it with an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_that_does_not_come_stalls_apalis_worker_without_an_error() {
    let backends = Backends::start().await;
    let direct = backends.settings();
    let hold = Arc::new(AtomicBool::new(false));
    let mut proxied = direct.clone();
    let port = reply_holding_proxy(backends.redis.port, hold.clone()).await;
    proxied.redis.url = format!("redis://127.0.0.1:{port}");
    let (queue, _, _) = connect(&proxied).await;
    let (writer, _, _) = connect(&direct).await;
    let (mut ran, running) = apalis_worker(&queue, 0);
    writer
        .push(DrainJob::one("stall/a".into(), 1))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(30), ran.recv()).await;
    assert!(
        matches!(first, Ok(Some(_))),
        "apalis's worker ran no job at all"
    );

    hold.store(true, Ordering::Relaxed);
    let waiting = DrainJob::one("stall/b".into(), 2);
    writer.push(waiting.clone()).await.unwrap();
    // Held for 5 s: long enough to show the stall (a healthy worker fetches within a poll),
    // and shorter than the ~10 s after which a worker that misses its heartbeats counts as
    // dead and leaves the queue's worker set, which would end it with an error once the
    // replies come (seen once in CI with a 12 s hold on a loaded machine).
    let held = tokio::time::timeout(Duration::from_secs(5), ran.recv()).await;
    assert!(
        held.is_err(),
        "the worker ran a job while its replies were held"
    );
    assert!(
        !running.is_finished(),
        "the worker ended: {:?}",
        running.await
    );

    hold.store(false, Ordering::Relaxed);
    let after = tokio::time::timeout(Duration::from_secs(30), ran.recv()).await;
    assert_eq!(after.ok().flatten(), Some(waiting));
    running.abort();
}
