//! The cache's layout in Redis, owned here and nowhere else: the name of every key of a shard
//! ([`ShardKeys`]), the fields of a record ([`record`]) and of the drain counters ([`stats`]),
//! and each Lua script's KEYS and ARGV by name ([`scripts`]). The scripts read the fields
//! through the names [`LAYOUT_LUA`] binds and their KEYS and ARGV through the names their
//! signature binds, so a script that reads a field or a key this module does not name fails
//! a test (`layout/tests.rs`), and tests look keys up here instead of spelling them.
//!
//! Per shard (see [`crate::redis_link::Shard`]: single-node Redis has one, whose prefix is
//! `bp:`; a cluster has several, prefixed `bp:{<tag>}:` so that each shard's keys share one
//! hash slot and every script touches one slot):
//! - `<prefix>blob:<key>`: the record, a hash of [`record`]'s fields. Dirty records have no
//!   TTL, so no expiry and no `volatile-*` eviction can drop them; clean ones expire after
//!   `BLOBPROXY_CACHE_TTL_SECS`.
//! - `<prefix>version`: the last version handed out (a key's versions come from its shard's;
//!   the rule is `next_version.lua`'s, prepended to every script that writes a version).
//! - `<prefix>dirty`: sorted set of dirty keys, scored by when they became dirty (ms).
//! - `<prefix>dirty-by-key`: the same keys, score 0, so they can be read in key order.
//! - `<prefix>lease:<key>`: `<token> <deadline ms>` of the worker (or write-through) uploading
//!   that key; no TTL, so eviction cannot drop it (see `upload_lease.lua`).
//! - `<prefix>dead`: hash of keys the worker gave up on (key -> JSON reason).
//! - `<prefix>retry`: sorted set of the keys S3 failed for, scored by when the next attempt is
//!   due (ms); the sweep drains them then (see `retry_later.lua`).
//! - `<prefix>failing`: the same keys, scored by when they first failed (ms).
//! - `<prefix>failures`: hash of the same keys -> JSON `{attempts, error}` (the last error).
//! - `<prefix>stats`: counters of all workers ([`stats`]).
//! - `<prefix>stage:<id>`: the bytes of a large write between its two commands (see `put.lua`).
//! - `<prefix>request:<id>`: `<fingerprint> <version>` of the write an `Idempotency-Key`
//!   named, for a minute, so a repeat of it is answered instead of written again (see
//!   `requests.lua`); in the shard of the key written.
//! - `<prefix>mirror:<name>:behind`, `:due`, `:want`, `:errors`, `:lease:<key>`: what mirror
//!   `<name>` has yet to copy from the primary store ([`MirrorKeys`]; see `mirrors.lua`). Key
//!   names and versions only: a mirror that is down costs no blob bytes here.
//! - the shard's drain queue ([`QueueKeys`]: apalis-redis's keys, named after the queue).

#[cfg(test)]
mod checks;
pub(super) mod scripts;

use std::sync::LazyLock;

use crate::queue::QueueKeys;
use crate::redis_link::{Keyspace, Shard};

/// The fields of a record (`<prefix>blob:<key>`, a hash) and the values they take.
pub mod record {
    /// [`BLOB`] or [`TOMB`] (the marker of a delete).
    pub const KIND: &str = "k";
    /// The blob's bytes (absent in a delete marker).
    pub const DATA: &str = "d";
    pub const EXTENSION: &str = "e";
    pub const CONTENT_TYPE: &str = "c";
    /// The version, a decimal number.
    pub const VERSION: &str = "v";
    /// [`DIRTY`] (not yet in S3) or [`CLEAN`].
    pub const STATE: &str = "s";
    /// The W3C `traceparent` of the write of this version, when it was traced: the drain
    /// links its upload to it. Absent when tracing is off.
    pub const TRACE: &str = "t";

    pub const BLOB: &str = "blob";
    pub const TOMB: &str = "tomb";
    pub const DIRTY: &str = "dirty";
    pub const CLEAN: &str = "clean";
}

/// The fields of the drain counters (`<prefix>stats`, a hash every worker adds to).
pub mod stats {
    /// S3 writes (stores and deletes) that succeeded.
    pub const UPLOADS: &str = "uploads";
    /// S3 writes that failed (and were retried or dead-lettered).
    pub const UPLOAD_FAILURES: &str = "upload_failures";
    /// Dirty keys the sweep found with no job on its way (lost, or its worker died).
    pub const ORPHANS: &str = "orphans";
}

/// What a write script answers for each write, beside its version.
pub mod outcome {
    /// Written, and a drain job queued: nobody was draining the key.
    pub const QUEUED: &str = "queued";
    /// Written; the drain already under way for the key takes it.
    pub const DRAINING: &str = "draining";
    /// Not written: a repeat of the request that wrote the version answered.
    pub const REPEATED: &str = "repeated";
    /// Not written: the request's key named another write (other key or bytes).
    pub const REUSED: &str = "reused";
}

/// The names the scripts use for the fields and values above, as Lua sees them.
const LUA_NAMES: &[(&str, &str)] = &[
    ("KIND", record::KIND),
    ("DATA", record::DATA),
    ("EXTENSION", record::EXTENSION),
    ("CONTENT_TYPE", record::CONTENT_TYPE),
    ("VERSION", record::VERSION),
    ("STATE", record::STATE),
    ("TRACE", record::TRACE),
    ("BLOB", record::BLOB),
    ("TOMB", record::TOMB),
    ("DIRTY", record::DIRTY),
    ("CLEAN", record::CLEAN),
    ("UPLOADS", stats::UPLOADS),
    ("UPLOAD_FAILURES", stats::UPLOAD_FAILURES),
    ("QUEUED", outcome::QUEUED),
    ("DRAINING", outcome::DRAINING),
    ("REPEATED", outcome::REPEATED),
    ("REUSED", outcome::REUSED),
];

/// Lua that binds [`LUA_NAMES`], prepended to every script of the cache.
pub(super) static LAYOUT_LUA: LazyLock<String> = LazyLock::new(|| {
    let (names, values): (Vec<&str>, Vec<String>) = LUA_NAMES
        .iter()
        .map(|(name, value)| (*name, format!("'{value}'")))
        .unzip();
    format!("local {} = {}\n", names.join(", "), values.join(", "))
});

/// The names of one shard's Redis keys, made once.
pub struct ShardKeys {
    pub shard: &'static Shard,
    pub version: String,
    pub dirty: String,
    /// The dirty keys again, all with score 0 so they sort by key: lets a listing merge keys
    /// not yet in S3 with S3's own (sorted) listing.
    pub dirty_by_key: String,
    pub dead: String,
    /// Keys S3 failed for, by when their next attempt is due (ms).
    pub retry: String,
    /// The same keys, by when they first failed (ms).
    pub failing: String,
    /// The same keys -> JSON `{attempts, error}`.
    pub failures: String,
    pub stats: String,
    pub queue: QueueKeys,
    record_prefix: String,
    lease_prefix: String,
    stage_prefix: String,
    request_prefix: String,
}

impl ShardKeys {
    pub fn of(shard: &'static Shard) -> Self {
        Self {
            shard,
            version: shard.key("version"),
            dirty: shard.key("dirty"),
            dirty_by_key: shard.key("dirty-by-key"),
            dead: shard.key("dead"),
            retry: shard.key("retry"),
            failing: shard.key("failing"),
            failures: shard.key("failures"),
            stats: shard.key("stats"),
            queue: QueueKeys::of(shard),
            record_prefix: shard.key("blob:"),
            lease_prefix: shard.key("lease:"),
            stage_prefix: shard.key("stage:"),
            request_prefix: shard.key("request:"),
        }
    }

    /// The keys of the one shard of a single Redis server.
    pub fn single() -> Self {
        Self::of(&Keyspace::Single.shards()[0])
    }

    /// The names of every shard of `keyspace`, in shard order.
    pub fn all(keyspace: Keyspace) -> Vec<ShardKeys> {
        keyspace.shards().iter().map(ShardKeys::of).collect()
    }

    /// A pattern (for `KEYS`/`SCAN`) that matches every key of the shard but its queue's.
    pub fn every_key(&self) -> String {
        self.shard.key("*")
    }

    /// The record of `key` (a `*` in `key` makes it a pattern for `KEYS`/`SCAN`).
    pub fn record(&self, key: &str) -> String {
        format!("{}{key}", self.record_prefix)
    }

    /// The upload lease of `key`.
    pub fn lease(&self, key: &str) -> String {
        format!("{}{key}", self.lease_prefix)
    }

    /// The staged bytes of the large write `id`.
    pub fn stage(&self, id: &str) -> String {
        format!("{}{id}", self.stage_prefix)
    }

    /// The answer to the write of request `id` (its `Idempotency-Key`).
    pub fn request(&self, id: &str) -> String {
        format!("{}{id}", self.request_prefix)
    }

    /// What mirror `name` has yet to copy, in this shard.
    pub fn mirror(&self, name: &str) -> MirrorKeys {
        let key = |what: &str| self.shard.key(&format!("mirror:{name}:{what}"));
        MirrorKeys {
            behind: key("behind"),
            due: key("due"),
            want: key("want"),
            errors: key("errors"),
            dead: key("dead"),
            backfill: key("backfill"),
            lease_prefix: key("lease:"),
        }
    }
}

/// One mirror's keys in one shard: the keys of blobs it has not copied yet.
pub struct MirrorKeys {
    /// Sorted set: key -> when it fell behind (ms), for the mirror's lag.
    pub behind: String,
    /// Sorted set: the same keys -> when their next copy is due (ms).
    pub due: String,
    /// Hash: the same keys -> the newest version the primary store got.
    pub want: String,
    /// Hash: keys whose copy failed -> `<attempts> <error>`.
    pub errors: String,
    /// Hash: keys the mirror refused for good -> `<attempts> <error>` (parked, still behind).
    pub dead: String,
    /// Hash (used in the first shard only): a back-fill's cursor, `after` (the last key
    /// done, in the primary store's key order), `objects` and `versions` copied so far.
    pub backfill: String,
    lease_prefix: String,
}

impl MirrorKeys {
    /// The lease of the copier copying `key`.
    pub fn lease(&self, key: &str) -> String {
        format!("{}{key}", self.lease_prefix)
    }
}
