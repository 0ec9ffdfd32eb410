//! The Redis side of a blob: versioned records (blobs and delete markers) with their dirty or
//! clean state, the upload leases, the dirty backlog and the dead letters. It knows nothing of
//! HTTP or S3; the only other module it uses is [`crate::queue`], whose job-queueing script the
//! write scripts run, so a write and its drain job are one round trip.
//!
//! Every multi-step change is one Lua script, so a reader never sees half a write. Each script
//! sits next to the one function that runs it:
//! - [`records`]: write (`put.lua`), read, re-cache (`recache.lua`), listing summaries;
//!   [`group_commit`]: small writes of one HTTP thread sent together (`put_batch.lua`).
//! - [`lease`]: upload leases (`lease.lua`) and [`UploadLease`], the holder both the drain and
//!   the write-through use.
//! - [`backlog`]: marking a version clean (`finish_upload.lua`), dirty keys nobody drains
//!   (`orphans.lua`), the backlog's size and the drain counters.
//! - [`dead_letters`]: keys the worker gave up on (`dead_letter.lua`).
//! - [`write_through`]: the two steps of a large write that skips the cache.
//!
//! Layout in Redis, per shard (see [`crate::redis_link::Shard`]: single-node Redis has one,
//! whose prefix is `bp:`; a cluster has several, prefixed `bp:{<tag>}:` so that each shard's
//! keys share one hash slot and every script touches one slot). Per shard:
//! - `<prefix>blob:<key>`: hash `k` (`blob` or `tomb`), `d` (bytes), `e` (extension), `c`
//!   (content type), `v` (version), `s` (`dirty`/`clean`). Dirty records have no TTL, so no
//!   expiry and no `volatile-*` eviction can drop them; clean ones expire after
//!   `BLOBPROXY_CACHE_TTL_SECS`.
//! - `<prefix>version`: the last version handed out (a key's versions come from its shard's).
//! - `<prefix>dirty`: sorted set of dirty keys, scored by when they became dirty (ms).
//! - `<prefix>dirty-by-key`: the same keys, score 0, so they can be read in key order.
//! - `<prefix>lease:<key>`: `<token> <deadline ms>` of the worker (or write-through) uploading
//!   that key; no TTL, so eviction cannot drop it (see `upload_lease.lua`).
//! - `<prefix>dead`: hash of keys the worker gave up on (key -> JSON reason).
//! - `<prefix>stats`: counters of all workers (`uploads`, `upload_failures`).
//! - `<prefix>stage:<id>`: the bytes of a large write between its two commands (see `put.lua`).
//! - the shard's drain queue ([`crate::queue::QueueKeys`]).
//!
//! Operations on one key go to its shard; those on the whole cache (backlog, listing, dead
//! letters, counters) ask every shard and merge.

mod backlog;
mod connection;
mod dead_letters;
mod group_commit;
mod lease;
mod records;
mod summaries;
#[cfg(test)]
mod test_redis;
#[cfg(test)]
mod tests;
mod write_through;

pub use backlog::{DrainStats, Finish};
pub use connection::BlobCache;
pub use dead_letters::DeadLetter;
pub use lease::UploadLease;
pub use records::{Cached, Written};
pub use summaries::Summary;
pub use write_through::WriteThrough;

use crate::queue::QueueKeys;
use crate::redis_link::{self, Keyspace, Shard};

/// The names of one shard's Redis keys, made once.
pub(crate) struct Names {
    pub shard: &'static Shard,
    pub version: String,
    pub dirty: String,
    /// The dirty keys again, all with score 0 so they sort by key: lets a listing merge keys
    /// not yet in S3 with S3's own (sorted) listing.
    pub dirty_by_key: String,
    pub dead: String,
    pub stats: String,
    pub lease_prefix: String,
    pub queue: QueueKeys,
    record_prefix: String,
    stage_prefix: String,
}

impl Names {
    fn of(shard: &'static Shard) -> Self {
        Self {
            shard,
            version: shard.key("version"),
            dirty: shard.key("dirty"),
            dirty_by_key: shard.key("dirty-by-key"),
            dead: shard.key("dead"),
            stats: shard.key("stats"),
            lease_prefix: shard.key("lease:"),
            queue: QueueKeys::of(shard),
            record_prefix: shard.key("blob:"),
            stage_prefix: shard.key("stage:"),
        }
    }

    /// The names of every shard of `keyspace`, in shard order.
    fn all(keyspace: Keyspace) -> Vec<Names> {
        keyspace.shards().iter().map(Names::of).collect()
    }

    fn record(&self, key: &str) -> String {
        format!("{}{key}", self.record_prefix)
    }

    fn lease(&self, key: &str) -> String {
        format!("{}{key}", self.lease_prefix)
    }

    fn stage(&self, id: &str) -> String {
        format!("{}{id}", self.stage_prefix)
    }
}

/// The Lua fragments several scripts share, prepended to them.
const UPLOAD_LEASE_LUA: &str = include_str!("upload_lease.lua");
const MARK_DIRTY_LUA: &str = include_str!("mark_dirty.lua");
const NEXT_VERSION_LUA: &str = include_str!("next_version.lua");
/// Scripts with this first line may run when Redis is full: draining is what frees memory.
const ALLOW_OOM: &str = "#!lua flags=allow-oom\n";

#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    /// Redis refused the write because it reached `maxmemory`; nothing was written.
    #[error("Redis is out of memory: {0}")]
    OutOfMemory(String),
    #[error("Redis is unavailable: {0}")]
    Unavailable(String),
    #[error("unexpected reply from Redis: {0}")]
    Protocol(String),
}

impl From<redis::RedisError> for CacheError {
    fn from(e: redis::RedisError) -> Self {
        let whole = e.to_string();
        let out_of_memory = redis_link::out_of_memory(&e);
        // A pipeline fails with every command's error; the first one is the cause (an OOM
        // refusal of the staging write makes the script after it fail too).
        let first = e
            .into_server_errors()
            .and_then(|errors| errors.first().map(|(_, error)| error.clone()));
        match first {
            Some(error) if error.code() == "OOM" => CacheError::OutOfMemory(error.to_string()),
            Some(error) => CacheError::Unavailable(error.to_string()),
            None if out_of_memory => CacheError::OutOfMemory(whole),
            None => CacheError::Unavailable(whole),
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
