//! The job queue's Redis layout: its keys, job ids, and the script that queues a job. Used by
//! the cache's write scripts (a write and its job are one round trip) and by the worker.
//!
//! A job names a key and the version that made it dirty, never the bytes: the
//! worker reads the newest bytes from Redis when it runs, so a job is small and a late job
//! never uploads stale data.
//!
//! A write that arrived in a group-committed batch shares one job with the batch's other keys
//! (`more`): one job per Redis call, not per write.
//!
//! Workers consume the queue through apalis-redis. Jobs are written by our own Lua
//! (`queue_job.lua`): inside the PUT script, so a write and its job are one round trip, and
//! straight onto the active list, which keeps a large backlog from wedging apalis.

mod cluster_conn;
mod keys;

use std::time::Duration;

use apalis_redis::{Config, RedisStorage};
use serde::{Deserialize, Serialize};

pub use cluster_conn::QueueConn;
pub use keys::{QueueKeys, oldest_unfinished_job};

use crate::redis_link::{self, Keyspace, RedisLink, Shard, lua_script};

/// The Lua function `queue_job(q, job_id, key, version)`, prepended to every script that queues
/// a drain job (see the file for the layout it writes).
pub const QUEUE_JOB_LUA: &str = include_str!("queue_job.lua");

lua_script! {
    /// Queues one drain job, outside a write (replays, re-queues).
    struct Enqueue<'a> = "", [QUEUE_JOB_LUA, include_str!("enqueue.lua")] {
        keys { queue_data, queue_meta, queue_active }
        args { job_id: &'a str, key: &'a str, version: u64 }
    }
}

/// A fresh job id; apalis-redis identifies jobs by ULID.
pub fn new_job_id() -> String {
    ulid::Ulid::generate().to_string()
}

/// A key to drain (the version that made it dirty is for the log), and, for a job queued by a
/// group-committed batch of writes, the other keys of that batch.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DrainJob {
    pub key: String,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<String>,
    /// Set when the job is JSON in a shape this version cannot read (another version wrote
    /// it): why, and the job. Such a job names no key; the worker sets it aside and the sweep
    /// drains its keys. Decoding it as an error instead would end apalis's whole worker, and
    /// every worker after it that fetched the job again (`tests/api/queue_contract.rs`).
    #[serde(skip)]
    pub unreadable: Option<String>,
}

/// The shape this version writes and reads.
#[derive(Deserialize)]
struct Shape {
    key: String,
    version: u64,
    #[serde(default)]
    more: Vec<String>,
}

impl<'de> Deserialize<'de> for DrainJob {
    fn deserialize<D: serde::Deserializer<'de>>(from: D) -> Result<Self, D::Error> {
        let job = serde_json::Value::deserialize(from)?;
        Ok(match Shape::deserialize(&job) {
            Ok(Shape { key, version, more }) => DrainJob {
                key,
                version,
                more,
                unreadable: None,
            },
            Err(e) => DrainJob {
                key: String::new(),
                version: 0,
                more: Vec::new(),
                unreadable: Some(format!("{e}: {job}")),
            },
        })
    }
}

impl DrainJob {
    /// A job for one key.
    pub fn one(key: String, version: u64) -> Self {
        Self {
            key,
            version,
            more: Vec::new(),
            unreadable: None,
        }
    }

    /// Every key the job names.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.key.as_str()).chain(self.more.iter().map(String::as_str))
    }
}

/// Redis refused a queue operation, or could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis reached `maxmemory` and refused the job; nothing was queued.
    #[error("Redis is out of memory; the drain job was not queued")]
    Full(#[source] redis::RedisError),
    #[error("the drain queue in Redis cannot be reached")]
    Unavailable(#[source] redis::RedisError),
}

impl From<redis::RedisError> for QueueError {
    fn from(e: redis::RedisError) -> Self {
        if redis_link::out_of_memory(&e) {
            QueueError::Full(e)
        } else {
            QueueError::Unavailable(e)
        }
    }
}

/// The drain queues, one per shard (see [`crate::redis_link::Shard`]: a queue's keys share its
/// shard's hash slot); cheap to clone.
#[derive(Clone)]
pub struct JobQueue {
    storages: Vec<RedisStorage<DrainJob, QueueConn>>,
    keyspace: Keyspace,
    poll: Duration,
}

impl JobQueue {
    pub fn new(conn: RedisLink, poll: Duration) -> Self {
        let keyspace = conn.keyspace();
        let storages = keyspace
            .shards()
            .iter()
            .map(|shard| {
                RedisStorage::new(QueueConn::new(conn.clone()))
                    .with_config(Self::config(shard, poll))
            })
            .collect();
        Self {
            storages,
            keyspace,
            poll,
        }
    }

    /// The apalis configuration both sides use. The queue name is fixed (apalis defaults to
    /// the Rust type path, which would strand queued jobs whenever the type moved). `poll` is
    /// the heartbeat: apalis-redis only looks for new jobs when a heartbeat wakes an idle
    /// worker, so it doubles as the poll interval. A worker is declared dead after ~10 s of
    /// missed heartbeats and its jobs are handed to the others.
    fn config(shard: &Shard, poll: Duration) -> Config {
        let missed = (Duration::from_secs(10).as_millis() / poll.as_millis().max(1)).max(2);
        Config::default()
            .queue(shard.queue_name())
            .heartbeat_interval(poll)
            .missed_heartbeats(missed as usize)
            // apalis's task locks cost an LREM over the whole queue per job (O(backlog): a
            // 10,000-job backlog spent most of Redis's time there) and guard nothing we need:
            // the per-key upload lease keeps two workers off one key, drains are idempotent,
            // and a dead worker's jobs are re-queued from its in-flight set either way.
            .lock_tasks(false)
            // Nobody subscribes to apalis's task events: skip a PUBLISH per job.
            .emit_events(false)
    }

    /// Every shard's queue, for the worker (one apalis worker each).
    pub fn storages(&self) -> &[RedisStorage<DrainJob, QueueConn>] {
        &self.storages
    }

    /// Jobs a worker could fetch right now (not those scheduled for a later retry).
    pub async fn ready(&self) -> Result<u64, QueueError> {
        let mut total = 0;
        for storage in &self.storages {
            let length: u64 = redis::cmd("LLEN")
                .arg(storage.get_config().active_jobs_list())
                .query_async(&mut storage.clone().get_connection().clone())
                .await?;
            total += length;
        }
        Ok(total)
    }

    /// How often an idle worker looks for jobs (and heart-beats).
    pub fn poll_interval(&self) -> Duration {
        self.poll
    }

    /// Jobs waiting to run (queued now or scheduled for a retry).
    pub async fn pending(&self) -> Result<u64, QueueError> {
        let mut total = 0;
        for storage in &self.storages {
            let config = storage.get_config();
            let (queued, scheduled): (u64, u64) = redis::pipe()
                .llen(config.active_jobs_list())
                .zcard(config.scheduled_jobs_set())
                .query_async(&mut storage.clone().get_connection().clone())
                .await?;
            total += queued + scheduled;
        }
        Ok(total)
    }

    /// Removes finished jobs, every shard's; how many. apalis-redis's own vacuum deletes a
    /// finished job's data and meta but leaves its id in the done set, which then grows by
    /// one id per job forever (`queue_contract` shows it): so the set goes too. Nothing
    /// reads it (no `persist_results`, no dashboard).
    pub async fn vacuum_finished(&self) -> Result<usize, QueueError> {
        use apalis_core::backend::Vacuum as _;
        let mut removed = 0;
        for storage in &self.storages {
            let mut storage = storage.clone();
            removed += match storage.vacuum().await {
                Ok(removed) => removed,
                Err(apalis_redis::Error::Database(e)) => return Err(e.into()),
                Err(other) => {
                    tracing::warn!(error = %other, "apalis could not vacuum its finished jobs");
                    0
                }
            };
            let _: i64 = redis::cmd("DEL")
                .arg(storage.get_config().done_jobs_set())
                .query_async(storage.get_connection())
                .await?;
        }
        Ok(removed)
    }

    /// Queues a job on the queue of its key's shard (the keys of a job share one shard).
    #[tracing::instrument(skip_all, fields(key = %job.key, version = job.version))]
    pub async fn push(&self, job: DrainJob) -> Result<(), QueueError> {
        let shard = self.keyspace.shard_of(&job.key);
        let storage = &self.storages[shard.index()];
        let keys = QueueKeys::of(shard);
        let enqueue = Enqueue {
            queue_data: &keys.data,
            queue_meta: &keys.meta,
            queue_active: &keys.active,
            job_id: &new_job_id(),
            key: &job.key,
            version: job.version,
        };
        let _: i64 = enqueue
            .invocation()
            .invoke_async(&mut storage.clone().get_connection().clone())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_enqueue_script_reads_only_the_names_its_signature_declares() {
        assert_eq!(super::Enqueue::lua().check(&[]), Ok(()));
    }
}
