//! The Redis side of a blob: versioned records (blobs and delete markers) with their dirty or
//! clean state, the upload leases, the dirty backlog and the dead letters. It knows nothing of
//! HTTP or S3; the only other module it uses is [`crate::queue`], whose job-queueing script the
//! write scripts run, so a write and its drain job are one round trip.
//!
//! Every multi-step change is one Lua script, so a reader never sees half a write. Where the
//! state lives, each key's name, the record's fields and each script's KEYS and ARGV: the
//! [`layout`]. What [`BlobCache`] does, by concept:
//! - [`writes`]: a new version (`put`, `delete`), one at a time or a group-committed batch
//!   ([`group_commit`] gathers them), and the two steps of a write-through. A write that
//!   names its request is applied once ([`requests`]). [`large_writes`]: the two steps of a
//!   write-through.
//! - [`reads`]: a record, re-caching a blob read from S3, summaries for a listing.
//! - [`draining`]: the drain's side: upload leases ([`UploadLease`], which the write-through
//!   holds too), marking a version clean, the drain counters.
//! - [`backlog`]: the dirty keys (counts, ages, in key order for listings, those nobody drains
//!   for the sweep).
//! - [`retries`]: keys S3 keeps failing for, each waiting for its next attempt on a backoff.
//! - [`dead_letters`]: keys the worker gave up on.
//! - [`mirrors`]: what each mirror store has yet to copy from the primary one.
//! - [`mirror_backfill`]: a back-fill's hold on a key, and its cursor.
//! - [`server`]: the Redis servers themselves (answering, eviction policy, memory).
//!
//! Operations on one key go to its shard; those on the whole cache (backlog, listing, dead
//! letters, counters) ask every shard and merge.

mod backlog;
mod dead_letters;
mod draining;
mod group_commit;
mod large_writes;
pub mod layout;
mod mirror_backfill;
mod mirrors;
mod reads;
mod requests;
mod retries;
mod server;
#[cfg(test)]
mod test_redis;
#[cfg(test)]
mod tests;
mod writes;

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use backlog::QueueHealth;
pub use dead_letters::DeadLetter;
pub use draining::{DrainStats, Finish, UploadLease};
pub use large_writes::WriteThrough;
pub use mirror_backfill::BackfillCursor;
pub use mirrors::{MirrorCopy, MirrorLag};
pub use reads::{Cached, Summary};
pub use requests::REPEAT_WINDOW;
pub use retries::{Backoff, Failing, FailingKey};
pub use server::MemoryUse;
pub use writes::Written;

use crate::domain::BlobKey;
use crate::redis_link::{self, Keyspace, RedisLink, Shard};
use group_commit::Batcher;
use layout::ShardKeys;

/// The write-back cache. Cheap to clone: clones share one multiplexed connection, plus one
/// per HTTP worker thread once [`BlobCache::connect_this_thread`] ran there.
#[derive(Clone)]
pub struct BlobCache {
    shared: RedisLink,
    /// Replicas that must confirm each write, and how long to wait for them (Redis `WAIT`).
    replica_acks: Option<(u32, Duration)>,
    /// Tells this cache's per-thread connections from another's (tests run several).
    id: u64,
    keyspace: Keyspace,
    /// Every shard's key names, in shard order.
    keys: Arc<Vec<ShardKeys>>,
    /// The mirror stores' names: each is owed every version the primary store gets.
    mirrors: Arc<Vec<String>>,
}

thread_local! {
    /// Per-thread connections, by cache id. An HTTP worker thread that talks to Redis through
    /// a connection driven on another thread pays two thread hand-offs per command; perf
    /// showed the replica spending ~20% of its time in context switches on 1 KiB writes.
    static THREAD_CONNECTIONS: std::cell::RefCell<Vec<(u64, RedisLink, Rc<Batcher>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl BlobCache {
    pub fn new(conn: RedisLink) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let keyspace = conn.keyspace();
        Self {
            shared: conn,
            replica_acks: None,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            keyspace,
            keys: Arc::new(ShardKeys::all(keyspace)),
            mirrors: Arc::default(),
        }
    }

    /// Owes the mirrors `names` every version the primary store gets from now on.
    pub fn mirrored_to(mut self, names: Vec<String>) -> Self {
        self.mirrors = Arc::new(names);
        self
    }

    /// The key names of `key`'s shard.
    fn keys_of(&self, key: &str) -> &ShardKeys {
        &self.keys[self.shard_of(key).index()]
    }

    /// The shard of `key`.
    fn shard_of(&self, key: &str) -> &'static Shard {
        self.keyspace.shard_of(key)
    }

    /// The number of `key`'s shard (for traces).
    pub fn shard_index(&self, key: &BlobKey) -> usize {
        self.shard_of(key.as_str()).index()
    }

    /// The key names of every shard.
    fn every_shard(&self) -> &[ShardKeys] {
        &self.keys
    }

    /// Makes every write wait until `replicas` replicas confirm it, for up to `timeout`.
    pub fn confirmed_by(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replica_acks = (replicas > 0).then_some((replicas, timeout));
        self
    }

    /// Opens a connection owned by the calling thread's runtime (an HTTP worker thread), used
    /// from then on by every call made on this thread. Until it is up, or if it fails, the
    /// shared connection serves. Call it inside the thread's `LocalSet` (actix-web runs each
    /// worker thread in one; `tokio::task::spawn_local` is what `actix_web::rt::spawn` is).
    pub fn connect_this_thread(&self) {
        let (id, shared) = (self.id, self.shared.clone());
        tokio::task::spawn_local(async move {
            match shared.open_another().await {
                Ok(conn) => THREAD_CONNECTIONS.with(|c| {
                    let batcher = Batcher::new(conn.clone());
                    c.borrow_mut().push((id, conn, batcher))
                }),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "no per-thread Redis connection; using the shared one")
                }
            }
        });
    }

    /// This thread's connection if it has one, else the shared one.
    fn conn(&self) -> RedisLink {
        THREAD_CONNECTIONS
            .with(|c| {
                c.borrow()
                    .iter()
                    .find(|(id, ..)| *id == self.id)
                    .map(|(_, conn, _)| conn.clone())
            })
            .unwrap_or_else(|| self.shared.clone())
    }

    /// This thread's group commit, when it is an HTTP thread with its own connection.
    fn batcher(&self) -> Option<Rc<Batcher>> {
        THREAD_CONNECTIONS.with(|c| {
            c.borrow()
                .iter()
                .find(|(id, ..)| *id == self.id)
                .map(|(.., batcher)| batcher.clone())
        })
    }

    /// Waits until the replicas this cache asks for have every write `conn` sent so far to
    /// `shard`'s master (Redis `WAIT`, on the connection that sent the write); whether they
    /// confirmed in time (true when it asks for none).
    async fn confirm(&self, conn: &mut RedisLink, shard: &Shard) -> Result<bool, CacheError> {
        let Some((replicas, timeout)) = self.replica_acks else {
            return Ok(true);
        };
        let acked = conn.wait_for_replicas(shard, replicas, timeout).await?;
        Ok(acked >= u64::from(replicas))
    }

    /// `ask`'s answer from every shard, asked all at once: in a cluster, the round trips run
    /// side by side, not in a row.
    async fn ask_every_shard<T>(
        &self,
        ask: impl AsyncFn(RedisLink, &ShardKeys) -> redis::RedisResult<T>,
    ) -> Result<Vec<T>, CacheError> {
        let asked = self
            .every_shard()
            .iter()
            .map(|shard| ask(self.conn(), shard));
        Ok(futures::future::try_join_all(asked).await?)
    }
}

/// What the cache could not do, in its own terms; the Redis error that caused it is the
/// source. Clone: a group-committed batch answers each of its writes with the batch's error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    /// Redis refused the write because it reached `maxmemory`; nothing was written.
    #[error("Redis is out of memory")]
    OutOfMemory(#[source] redis::RedisError),
    #[error("Redis cannot be reached")]
    Unavailable(#[source] redis::RedisError),
    /// Redis answered something no script of ours returns: a bug, or a foreign writer.
    #[error("unexpected reply from Redis: {0}")]
    Protocol(String),
    /// The write named a request (`Idempotency-Key`) that wrote something else (another key or
    /// other bytes) within [`REPEAT_WINDOW`]; nothing was written.
    #[error("the Idempotency-Key was used for another write")]
    RequestReused,
}

impl From<redis::RedisError> for CacheError {
    fn from(e: redis::RedisError) -> Self {
        // A pipeline fails with every command's error; the first one is the cause (an OOM
        // refusal of the staging write makes the script after it fail too).
        if let Some(errors) = e.clone().into_server_errors()
            && let Some((_, first)) = errors.first()
        {
            let out_of_memory = first.code() == "OOM";
            let first = redis::RedisError::from(first.clone());
            return if out_of_memory {
                CacheError::OutOfMemory(first)
            } else {
                CacheError::Unavailable(first)
            };
        }
        if redis_link::out_of_memory(&e) {
            CacheError::OutOfMemory(e)
        } else {
            CacheError::Unavailable(e)
        }
    }
}

fn parse_version(raw: &str) -> Result<u64, CacheError> {
    raw.parse()
        .map_err(|_| CacheError::Protocol(format!("version {raw:?} is not a number")))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}
