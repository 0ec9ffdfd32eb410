//! What operators ask of the service: the backlog (`/status`, `/metrics`, `flush`), and the
//! dead letters (replay them all, read one out, move one under a valid key).

use serde::Serialize;

use super::{BlobService, ServiceError, Stored};
use crate::cache::{DeadLetter, DrainStats, FailingKey};
use crate::domain::{Blob, BlobKey, Extension};
use crate::queue::DrainJob;

/// The backlog, for `/status` and `flush`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// Drain jobs waiting to run (queued, or scheduled for a retry).
    pub queued_jobs: u64,
    /// Records (blobs and deletes) not yet reflected in S3.
    pub dirty: u64,
    /// How long the oldest dirty record has waited, in seconds.
    pub oldest_dirty_age_secs: Option<f64>,
    pub dead_letters: u64,
    /// The first dead letters (up to 100).
    pub dead_letter_sample: Vec<DeadLetter>,
    /// Keys S3 keeps failing for, each waiting for its next attempt (still dirty).
    pub failing_keys: u64,
    /// How long the longest-failing key has failed, in seconds.
    pub failing_for_secs: Option<f64>,
    /// The longest-failing keys (up to 100), with their last error.
    pub failing_sample: Vec<FailingKey>,
    /// How far each mirror store is behind the primary one (empty without mirrors).
    pub mirrors: Vec<MirrorStatus>,
}

/// One mirror store's lag behind the primary store.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MirrorStatus {
    pub name: String,
    /// Keys whose newest version in the primary store the mirror lacks yet.
    pub behind: u64,
    /// How long the oldest of them has waited, in seconds.
    pub oldest_behind_secs: Option<f64>,
    /// Keys whose last copy to the mirror failed (each retried on a backoff).
    pub failing: u64,
    /// Keys the mirror refused for good: parked, still behind, until `replay-dead-letters`
    /// or a new version of the key.
    pub dead_letters: u64,
}

impl BlobService {
    /// The drain backlog and the dead letters.
    pub async fn status(&self) -> Result<Status, ServiceError> {
        let (queued, dirty, oldest, (dead, sample), failing) = tokio::try_join!(
            async { Ok::<_, ServiceError>(self.queue.pending().await?) },
            async { Ok(self.cache.dirty_count().await?) },
            async { Ok(self.cache.oldest_dirty_age().await?) },
            async { Ok(self.cache.dead_letters(100).await?) },
            async { Ok(self.cache.failing(100).await?) },
        )?;
        let lags = self.cache.mirrors().iter().map(async |name| {
            let lag = self.cache.mirror_lag(name).await?;
            Ok::<_, ServiceError>(MirrorStatus {
                name: name.clone(),
                behind: lag.behind,
                oldest_behind_secs: lag.oldest_behind_secs,
                failing: lag.failing,
                dead_letters: lag.dead_letters,
            })
        });
        let mirrors = futures::future::try_join_all(lags).await?;
        Ok(Status {
            queued_jobs: queued,
            dirty,
            oldest_dirty_age_secs: oldest.map(|d| d.as_secs_f64()),
            dead_letters: dead,
            dead_letter_sample: sample,
            failing_keys: failing.count,
            failing_for_secs: failing.failing_for.map(|d| d.as_secs_f64()),
            failing_sample: failing.sample,
            mirrors,
        })
    }

    /// The Redis master nearest its memory limit, when Redis lets it be read.
    pub async fn redis_memory(&self) -> Option<crate::cache::MemoryUse> {
        self.cache.fullest_master().await
    }

    /// Counters of every worker's uploads.
    pub async fn drain_stats(&self) -> Result<DrainStats, ServiceError> {
        Ok(self.cache.stats().await?)
    }

    /// The blob of the dead-lettered `key` (`None` for a delete), also of a key this version's
    /// rules refuse, for an operator deciding about it; `NotFound` when `key` is no dead
    /// letter.
    pub async fn dead_letter_blob(&self, key: &str) -> Result<(Option<Blob>, u64), ServiceError> {
        let not_found = || ServiceError::NotFound(key.to_owned());
        if !self.cache.is_dead_letter(key).await? {
            return Err(not_found());
        }
        let cached = self.cache.get_by_name(key).await?.ok_or_else(not_found)?;
        Ok((cached.blob, cached.version))
    }

    /// Settles the dead-lettered `from` under the valid key `to`: its blob becomes a new write
    /// of `to` (drained as any other), then `from` leaves the cache. A dead-lettered delete
    /// has nothing to move: `from` just leaves the cache. Returns the new write, if any.
    pub async fn move_dead_letter(
        &self,
        from: &str,
        to: BlobKey,
    ) -> Result<Option<Stored>, ServiceError> {
        let (blob, version) = self.dead_letter_blob(from).await?;
        let stored = match blob {
            Some(blob) => {
                let extension = Extension::parse(blob.extension)?;
                Some(
                    self.put(to, &extension, &blob.content_type, &blob.data, None)
                        .await?,
                )
            }
            None => None,
        };
        self.cache.drop_dead_letter(from, version).await?;
        Ok(stored)
    }

    /// Gives every key a mirror store refused for good another copy; returns how many.
    pub async fn replay_mirror_dead_letters(&self) -> Result<u64, ServiceError> {
        let mut replayed = 0;
        for mirror in self.cache.mirrors() {
            replayed += self.cache.replay_mirror_dead_letters(mirror).await?;
        }
        Ok(replayed)
    }

    /// Gives every dead-lettered key another drain; returns how many were queued.
    pub async fn replay_dead_letters(&self) -> Result<u64, ServiceError> {
        let mut queued = 0;
        // Each key once: a key that fails again at once is dead-lettered anew while this runs,
        // and would otherwise be found and re-queued again, for as long as the worker keeps up.
        let mut replayed = std::collections::HashSet::new();
        loop {
            let (_, letters) = self.cache.dead_letters(500).await?;
            let letters: Vec<_> = letters
                .into_iter()
                .filter(|letter| !replayed.contains(&letter.key))
                .collect();
            if letters.is_empty() {
                return Ok(queued);
            }
            for letter in letters {
                replayed.insert(letter.key.clone());
                // Forget first: a job that fails again will dead-letter the key anew.
                if self.cache.forget_dead_letter(&letter.key).await? {
                    let job = DrainJob::one(letter.key.clone(), letter.version);
                    self.queue.push(job).await?;
                    tracing::info!(key = %letter.key, error = %letter.error, "re-queued");
                    queued += 1;
                }
            }
        }
    }
}
