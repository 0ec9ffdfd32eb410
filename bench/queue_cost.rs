//! What a write's drain job costs, queued the way blobproxy queues it (inside the write's own
//! script: `queue_job.lua`) or the way apalis-redis's public API would (the write's script,
//! then `push`: a second round trip and apalis's `batch_push.lua`). Against a real
//! redis-server at the URL given; it flushes that server's data.
//!
//! Prints, per write: Redis's own CPU (`INFO commandstats`, the scripts' microseconds) and the
//! client's wall time, sequential writes of 1 KiB on one connection.
//!
//!     cargo run --release --example queue_cost -- redis://127.0.0.1:6379 [writes]

use std::time::{Duration, Instant};

use apalis::prelude::TaskSink as _;
use blobproxy::cache::BlobCache;
use blobproxy::domain::BlobKey;
use blobproxy::queue::{DrainJob, JobQueue};
use blobproxy::redis_link::{self, RedisLink, RedisTarget};

/// Microseconds Redis spent in scripts (EVALSHA and EVAL) since the last reset, and calls.
async fn script_usec(link: &mut RedisLink) -> (u64, u64) {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(link)
        .await
        .unwrap();
    let (mut usec, mut calls) = (0, 0);
    for line in info.lines() {
        let Some(stats) = line
            .strip_prefix("cmdstat_evalsha:")
            .or(line.strip_prefix("cmdstat_eval:"))
        else {
            continue;
        };
        for field in stats.split(',') {
            match field.split_once('=') {
                Some(("usec", v)) => usec += v.parse::<u64>().unwrap(),
                Some(("calls", v)) => calls += v.parse::<u64>().unwrap(),
                _ => {}
            }
        }
    }
    (usec, calls)
}

async fn reset(link: &mut RedisLink) {
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(link)
        .await
        .unwrap();
}

fn key(prefix: &str, i: usize) -> BlobKey {
    BlobKey::parse(format!("{prefix}/{i}")).unwrap()
}

/// One row: Redis CPU per write, wall time per write, round trips per write.
fn row(what: &str, usec: u64, wall: Duration, writes: usize, trips: u32) {
    println!(
        "{what:<44} redis {:>6.1} us/write   wall {:>6.1} us/write   {trips} round trip(s)",
        usec as f64 / writes as f64,
        wall.as_micros() as f64 / writes as f64,
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: queue_cost <redis url> [writes]");
    let writes: usize = args.next().map_or(5000, |n| n.parse().unwrap());
    let mut link = redis_link::connect(&RedisTarget::single(url))
        .await
        .unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut link).await.unwrap();
    let cache = BlobCache::new(link.clone());
    let queue = JobQueue::new(link.clone(), Duration::from_millis(50));
    let data = vec![7u8; 1024];

    // Each write to a new key queues its job inside the write's script.
    reset(&mut link).await;
    let started = Instant::now();
    for i in 0..writes {
        let written = cache
            .put(&key("new", i), "", "x/y", &data, None)
            .await
            .unwrap();
        assert!(written.queued);
    }
    let (usec, _) = script_usec(&mut link).await;
    row(
        "job inside the write (blobproxy)",
        usec,
        started.elapsed(),
        writes,
        1,
    );

    // The same keys again: dirty already, so the writes queue no job. The write alone...
    reset(&mut link).await;
    let started = Instant::now();
    for i in 0..writes {
        let written = cache
            .put(&key("new", i), "", "x/y", &data, None)
            .await
            .unwrap();
        assert!(!written.queued);
    }
    let (usec, _) = script_usec(&mut link).await;
    row(
        "the write alone, no job (the floor)",
        usec,
        started.elapsed(),
        writes,
        1,
    );

    // ...and the write followed by apalis's public push of its job.
    let mut storage = queue.storages()[0].clone();
    reset(&mut link).await;
    let started = Instant::now();
    for i in 0..writes {
        let written = cache
            .put(&key("new", i), "", "x/y", &data, None)
            .await
            .unwrap();
        storage
            .push(DrainJob::one(key("new", i).to_string(), written.version))
            .await
            .unwrap();
    }
    let wall = started.elapsed();
    let (usec, _) = script_usec(&mut link).await;
    row(
        "the write, then apalis's push (public API)",
        usec,
        wall,
        writes,
        2,
    );
}
