//! The dirty backlog: the keys not yet in S3, how many and since when, in key order (for
//! listings), and those nobody drains (for the sweep).

use std::time::Duration;

use redis::AsyncCommands as _;

use super::layout::ShardKeys;
use super::layout::scripts::Orphans;
use super::{BlobCache, CacheError, now_ms};
use crate::queue::oldest_unfinished_job;

/// What the sweep knows of the job queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueHealth {
    /// Jobs waiting in the queue will be delivered: their keys are no orphans.
    Delivering,
    /// The queue failed and delivers nothing: a job waiting there is as good as lost.
    Down,
}

impl BlobCache {
    /// Up to `limit` dirty keys starting with `prefix`, after `after`, in key order (every
    /// shard's first `limit`, merged).
    pub async fn dirty_keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, CacheError> {
        let (min, max) = lex_range(prefix, after);
        let mut keys: Vec<String> = self
            .ask_every_shard(async |mut conn, shard| {
                redis::cmd("ZRANGEBYLEX")
                    .arg(&shard.dirty_by_key)
                    .arg(&min)
                    .arg(&max)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit)
                    .query_async::<Vec<String>>(&mut conn)
                    .await
            })
            .await?
            .into_iter()
            .flatten()
            .collect();
        keys.sort_unstable();
        keys.truncate(limit);
        Ok(keys)
    }

    /// Number of records not yet reflected in S3.
    pub async fn dirty_count(&self) -> Result<u64, CacheError> {
        let counts = self
            .ask_every_shard(async |mut conn, shard| conn.zcard::<_, u64>(&shard.dirty).await)
            .await?;
        Ok(counts.into_iter().sum())
    }

    /// Age of the oldest dirty record, if any.
    pub async fn oldest_dirty_age(&self) -> Result<Option<Duration>, CacheError> {
        let oldest = self
            .ask_every_shard(async |mut conn, shard| {
                conn.zrange_withscores::<_, Vec<(String, f64)>>(&shard.dirty, 0, 0)
                    .await
            })
            .await?
            .into_iter()
            .filter_map(|first| first.first().map(|(_, since)| *since))
            .reduce(f64::min);
        let now = now_ms() as f64;
        Ok(oldest.map(|since| Duration::from_millis((now - since).max(0.0) as u64)))
    }

    /// Keys dirty for longer than `age` that no worker is uploading, that are not
    /// dead-lettered or waiting for a retry, and whose job is not still on its way (unless the
    /// `queue` is down): their job was lost (a crash between the cache write and the enqueue,
    /// a full Redis refusing the job) or their worker died. Up to `limit` from each shard.
    pub async fn orphaned_dirty_keys(
        &self,
        age: Duration,
        limit: usize,
        queue: QueueHealth,
    ) -> Result<Vec<String>, CacheError> {
        let cutoff = now_ms().saturating_sub(age.as_millis() as u64);
        let (mut orphans, mut failed) = (Vec::new(), None);
        for shard in self.every_shard() {
            // A shard whose master is down (failing over) must not keep the sweep from the
            // others.
            match self.orphans_of(shard, cutoff, limit, queue).await {
                Ok(found) => orphans.extend(found),
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            Some(e) if orphans.is_empty() => Err(e),
            _ => Ok(orphans),
        }
    }

    /// Up to `limit` keys of `shard` dirty since before `cutoff` (ms) that nobody drains: a
    /// page of the oldest dirty keys, then which of them have no lease, no dead letter and no
    /// retry waiting (one script that names their leases), page after page, so that many dead
    /// letters or failing keys (the oldest dirty keys, often) cannot hide an orphan behind
    /// them. At most `ORPHAN_PAGES` pages a call.
    ///
    /// A key whose job still waits in a long queue (or in a live worker's hands, for a free
    /// slot) is no orphan however long it waited: a key became dirty when its job was queued,
    /// and the queue is first in, first out, so only keys dirty since before the oldest
    /// unfinished job was queued can have lost theirs.
    async fn orphans_of(
        &self,
        shard: &ShardKeys,
        cutoff: u64,
        limit: usize,
        queue: QueueHealth,
    ) -> Result<Vec<String>, CacheError> {
        const ORPHAN_PAGES: usize = 16;
        // A worker is declared dead after this long without a heartbeat (queue/mod.rs).
        const WORKER_ALIVE: Duration = Duration::from_secs(10);
        // Job ids carry a replica's clock, dirty scores Redis's.
        const CLOCK_SKEW_MS: u64 = 1_000;
        let mut conn = self.conn();
        let oldest_dirty: Vec<(String, f64)> = conn.zrange_withscores(&shard.dirty, 0, 0).await?;
        if oldest_dirty
            .first()
            .is_none_or(|(_, since)| *since as u64 >= cutoff)
        {
            return Ok(Vec::new());
        }
        let cutoff = match queue {
            QueueHealth::Delivering => {
                match oldest_unfinished_job(&mut conn, &shard.queue, WORKER_ALIVE).await? {
                    Some(queued) => cutoff.min(queued.saturating_sub(CLOCK_SKEW_MS)),
                    None => cutoff,
                }
            }
            QueueHealth::Down => cutoff,
        };
        let mut orphans = Vec::new();
        for page in 0..ORPHAN_PAGES {
            let dirty: Vec<String> = conn
                .zrangebyscore_limit(
                    &shard.dirty,
                    "-inf",
                    cutoff,
                    (page * limit) as isize,
                    limit as isize,
                )
                .await?;
            if dirty.is_empty() {
                break;
            }
            let mut invocation = Orphans {
                dead: &shard.dead,
                retry: &shard.retry,
            }
            .invocation();
            for key in &dirty {
                invocation.key(shard.lease(key)).arg(key);
            }
            let found: Vec<String> = invocation.invoke_async(&mut conn).await?;
            orphans.extend(found);
            if orphans.len() >= limit || dirty.len() < limit {
                break;
            }
        }
        orphans.truncate(limit);
        Ok(orphans)
    }
}

/// The ZRANGEBYLEX bounds of the keys that start with `prefix` and sort after `after`.
fn lex_range(prefix: &str, after: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let min: Vec<u8> = match after {
        Some(after) if after >= prefix => [b"(", after.as_bytes()].concat(),
        _ => [b"[", prefix.as_bytes()].concat(),
    };
    // 0xFF never occurs in UTF-8, so it bounds every key that starts with `prefix`.
    let max: Vec<u8> = if prefix.is_empty() {
        b"+".to_vec()
    } else {
        [b"[", prefix.as_bytes(), b"\xff"].concat()
    };
    (min, max)
}

#[cfg(test)]
mod tests {
    use super::lex_range;

    #[test]
    fn lex_range_starts_after_the_cursor_within_the_prefix() {
        assert_eq!(lex_range("", None), (b"[".to_vec(), b"+".to_vec()));
        assert_eq!(
            lex_range("a/", Some("a/b")),
            (b"(a/b".to_vec(), b"[a/\xff".to_vec())
        );
        // A cursor before the prefix starts at the prefix.
        assert_eq!(lex_range("b", Some("a")).0, b"[b".to_vec());
    }
}
