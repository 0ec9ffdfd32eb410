//! The job queue. A job names a key and the version that made it dirty, never the bytes: the
//! worker reads the newest bytes from Redis when it runs, so a job is small and a late job
//! never uploads stale data.

use std::time::Duration;

use apalis::prelude::TaskSink;
use apalis_redis::{Config, RedisStorage};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

/// Fixed queue name: apalis defaults to the Rust type path, which would strand queued jobs
/// whenever the type moved.
pub const QUEUE_NAME: &str = "blobproxy:drain";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DrainJob {
    pub key: String,
    pub version: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot queue the drain job: {0}")]
pub struct EnqueueError(String);

/// Pushes drain jobs; cheap to clone.
#[derive(Clone)]
pub struct JobQueue {
    storage: RedisStorage<DrainJob>,
}

impl JobQueue {
    pub fn new(conn: ConnectionManager, config: Config) -> Self {
        Self {
            storage: RedisStorage::new(conn).with_config(config),
        }
    }

    /// The apalis configuration both sides use. `poll` is the heartbeat: apalis-redis only
    /// looks for new jobs when a heartbeat wakes an idle worker, so it doubles as the poll
    /// interval. A worker is declared dead after ~10 s of missed heartbeats and its jobs are
    /// handed to the others.
    pub fn config(poll: Duration) -> Config {
        let missed = (Duration::from_secs(10).as_millis() / poll.as_millis().max(1)).max(2);
        Config::default()
            .queue(QUEUE_NAME)
            .heartbeat_interval(poll)
            .missed_heartbeats(missed as usize)
    }

    pub fn storage(&self) -> RedisStorage<DrainJob> {
        self.storage.clone()
    }

    /// Jobs waiting to run (queued now or scheduled for a retry).
    pub async fn pending(&self) -> Result<u64, EnqueueError> {
        let config = self.storage.get_config();
        let (queued, scheduled): (u64, u64) = redis::pipe()
            .llen(config.active_jobs_list())
            .zcard(config.scheduled_jobs_set())
            .query_async(&mut self.storage.clone().get_connection().clone())
            .await
            .map_err(|e| EnqueueError(e.to_string()))?;
        Ok(queued + scheduled)
    }

    #[tracing::instrument(skip_all, fields(key = %job.key, version = job.version))]
    pub async fn push(&self, job: DrainJob) -> Result<(), EnqueueError> {
        self.storage
            .clone()
            .push(job)
            .await
            .map_err(|e| EnqueueError(e.to_string()))
    }
}
