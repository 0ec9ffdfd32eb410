//! The Redis keys of a shard's queue, and what they tell of the jobs in it.

use std::time::Duration;

use apalis_redis::Config;

use crate::redis_link::{RedisLink, Shard};

/// The Redis keys of a shard's queue: those `queue_job.lua` writes, and those apalis keeps
/// for itself (named here so that tests and tools look them up rather than spell them).
#[derive(Debug, Clone)]
pub struct QueueKeys {
    /// Hash: job id -> the job (JSON).
    pub data: String,
    /// Prefix of each job's meta hash (`<meta>:<job id>`).
    pub meta: String,
    /// List of the ids of jobs ready to run.
    pub active: String,
    /// Sorted set of jobs scheduled for a retry, by when.
    pub scheduled: String,
    /// Sorted set of the workers, by their last heartbeat.
    pub workers: String,
    /// Prefix of each worker's set of jobs in flight.
    pub inflight: String,
    /// Set of finished jobs (apalis keeps them; the worker vacuums it).
    pub done: String,
}

impl QueueKeys {
    /// The keys of `shard`'s queue (apalis-redis names them after the queue).
    pub fn of(shard: &Shard) -> Self {
        let config = Config::default().queue(shard.queue_name());
        QueueKeys {
            data: config.job_data_hash(),
            meta: config.job_meta_hash(),
            active: config.active_jobs_list(),
            scheduled: config.scheduled_jobs_set(),
            workers: config.workers_set(),
            inflight: config.inflight_jobs_set(),
            done: config.done_jobs_set(),
        }
    }
}

/// When (Unix ms, by the id's ULID) the oldest job of a shard's queue that has not finished was
/// queued: the first waiting one (the queue is first in, first out), those scheduled for a
/// retry, and those held by a live worker (heart-beating within `alive`), which may still be
/// waiting for a free upload slot. `None` when no job is unfinished. A dead worker's jobs do
/// not count: nobody is working on them.
pub async fn oldest_unfinished_job(
    conn: &mut RedisLink,
    keys: &QueueKeys,
    alive: Duration,
) -> redis::RedisResult<Option<u64>> {
    use redis::AsyncCommands as _;
    let mut ids: Vec<String> = conn.lrange(&keys.active, 0, 0).await?;
    ids.extend(
        conn.zrange::<_, Vec<String>>(&keys.scheduled, 0, -1)
            .await?,
    );
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    // apalis-redis scores its workers by their last heartbeat, in seconds.
    let live: Vec<String> = conn
        .zrangebyscore(
            &keys.workers,
            now_secs.saturating_sub(alive.as_secs()),
            "+inf",
        )
        .await?;
    for worker in live {
        let held: Vec<String> = conn.smembers(format!("{}:{worker}", keys.inflight)).await?;
        ids.extend(held);
    }
    Ok(ids
        .iter()
        .filter_map(|id| ulid::Ulid::from_string(id).ok())
        .map(|id| id.timestamp_ms())
        .min())
}
