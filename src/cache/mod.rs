//! The Redis side: blob records with their version and dirty/clean state, the set of dirty
//! keys, and the per-key upload lease that keeps two workers from racing on one key.
//!
//! Every multi-step change is one Lua script, so a reader never sees half a write and a PUT is
//! one round trip. This module knows nothing of HTTP or S3.
//!
//! Layout in Redis (all under the `bp:` prefix):
//! - `bp:blob:<key>`: hash `d` (bytes), `e` (extension), `v` (version), `s` (`dirty`/`clean`).
//!   Dirty hashes have no TTL; clean ones expire after `BLOBPROXY_CACHE_TTL_SECS`.
//! - `bp:version`: the last version handed out.
//! - `bp:dirty`: sorted set of dirty keys, scored by when they became dirty (ms).
//! - `bp:lease:<key>`: token of the worker uploading that key.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use crate::domain::{Blob, BlobKey};

const VERSION_KEY: &str = "bp:version";
pub const DIRTY_SET: &str = "bp:dirty";

fn blob_key(key: &BlobKey) -> String {
    format!("bp:blob:{key}")
}

const LEASE_PREFIX: &str = "bp:lease:";

fn lease_key(key: &BlobKey) -> String {
    format!("{LEASE_PREFIX}{key}")
}

#[derive(Debug, thiserror::Error)]
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
        if e.code() == Some("OOM") {
            CacheError::OutOfMemory(e.to_string())
        } else {
            CacheError::Unavailable(e.to_string())
        }
    }
}

/// What a PUT wrote.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    pub version: u64,
    /// The key was clean (or absent) before: nobody is draining it, so a job must be queued.
    pub needs_job: bool,
}

/// A cached blob and whether S3 already holds this version.
#[derive(Debug, Clone)]
pub struct CachedBlob {
    pub blob: Blob,
    pub dirty: bool,
}

/// Outcome of [`BlobCache::finish_upload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Clean,
    Newer,
    Gone,
    Lost,
}

// Each script hashes its source once; `invoke_async` sends EVALSHA and loads it on NOSCRIPT.
static PUT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("put.lua")));
static RECACHE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("recache.lua")));
static FINISH_UPLOAD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("finish_upload.lua")));
static ORPHANS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("orphans.lua")));
static LEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lease.lua")));

/// The write-back cache. Cheap to clone: clones share one multiplexed connection.
#[derive(Clone)]
pub struct BlobCache {
    conn: ConnectionManager,
}

impl BlobCache {
    pub fn new(conn: ConnectionManager) -> Self {
        Self { conn }
    }

    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Stores a new version of `key` as dirty (never expires until it is in S3).
    #[tracing::instrument(skip_all, fields(%key, size = data.len()))]
    pub async fn put(
        &self,
        key: &BlobKey,
        extension: &str,
        data: &[u8],
    ) -> Result<Written, CacheError> {
        let (version, newly): (String, i64) = PUT
            .key(blob_key(key))
            .key(VERSION_KEY)
            .key(DIRTY_SET)
            .arg(data)
            .arg(extension)
            .arg(key.as_str())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(Written {
            version: parse_version(&version)?,
            needs_job: newly == 1,
        })
    }

    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn get(&self, key: &BlobKey) -> Result<Option<CachedBlob>, CacheError> {
        type Fields = (
            Option<Vec<u8>>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let (data, ext, version, state): Fields = self
            .conn
            .clone()
            .hmget(blob_key(key), &["d", "e", "v", "s"])
            .await?;
        let (Some(data), Some(version)) = (data, version) else {
            return Ok(None);
        };
        Ok(Some(CachedBlob {
            blob: Blob {
                data: Bytes::from(data),
                extension: ext.unwrap_or_default(),
                version: parse_version(&version)?,
            },
            dirty: state.as_deref() != Some("clean"),
        }))
    }

    /// Caches a blob read from S3 as clean, unless the key is cached already (a newer dirty
    /// version written meanwhile must win). Returns whether it was cached.
    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn recache(
        &self,
        key: &BlobKey,
        blob: &Blob,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let cached: i64 = RECACHE
            .key(blob_key(key))
            .arg(blob.data.as_ref())
            .arg(&blob.extension)
            .arg(blob.version.to_string())
            .arg(ttl.as_secs())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(cached == 1)
    }

    /// Takes the upload lease of `key` for `ttl`, unless another worker holds it.
    pub async fn claim_lease(
        &self,
        key: &BlobKey,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(lease_key(key))
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(set.is_some())
    }

    /// Extends a lease this worker holds; false when it was lost.
    pub async fn renew_lease(
        &self,
        key: &BlobKey,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let held: i64 = LEASE
            .key(lease_key(key))
            .arg(token)
            .arg((ttl.as_millis() as u64).max(1))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(held == 1)
    }

    pub async fn release_lease(&self, key: &BlobKey, token: &str) -> Result<(), CacheError> {
        let _: i64 = LEASE
            .key(lease_key(key))
            .arg(token)
            .arg(0)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Marks `version` of `key` as stored in S3, if it is still the newest; see `Finish`.
    #[tracing::instrument(skip_all, fields(%key, version))]
    pub async fn finish_upload(
        &self,
        key: &BlobKey,
        token: &str,
        version: u64,
        ttl: Duration,
    ) -> Result<Finish, CacheError> {
        let outcome: String = FINISH_UPLOAD
            .key(blob_key(key))
            .key(lease_key(key))
            .key(DIRTY_SET)
            .arg(token)
            .arg(version.to_string())
            .arg(ttl.as_secs())
            .arg(key.as_str())
            .invoke_async(&mut self.conn.clone())
            .await?;
        match outcome.as_str() {
            "clean" => Ok(Finish::Clean),
            "newer" => Ok(Finish::Newer),
            "gone" => Ok(Finish::Gone),
            "lost" => Ok(Finish::Lost),
            other => Err(CacheError::Protocol(format!(
                "finish_upload returned {other:?}"
            ))),
        }
    }

    /// Number of blobs not yet in S3.
    pub async fn dirty_count(&self) -> Result<u64, CacheError> {
        Ok(self.conn.clone().zcard(DIRTY_SET).await?)
    }

    /// Keys dirty for longer than `age` that no worker is uploading: their job was lost (a
    /// crash between the cache write and the enqueue) or their worker died.
    pub async fn orphaned_dirty_keys(
        &self,
        age: Duration,
        limit: usize,
    ) -> Result<Vec<String>, CacheError> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let cutoff = now_ms.saturating_sub(age.as_millis() as u64);
        Ok(ORPHANS
            .key(DIRTY_SET)
            .arg(cutoff)
            .arg(limit)
            .arg(LEASE_PREFIX)
            .invoke_async(&mut self.conn.clone())
            .await?)
    }

    /// Answers PING; used by readiness checks.
    pub async fn ping(&self) -> Result<(), CacheError> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}

fn parse_version(raw: &str) -> Result<u64, CacheError> {
    raw.parse()
        .map_err(|_| CacheError::Protocol(format!("version {raw:?} is not a number")))
}

/// Connects to Redis with a connection manager that reconnects by itself after a restart.
pub async fn connect(url: &str) -> anyhow::Result<ConnectionManager> {
    use anyhow::Context as _;
    let client =
        redis::Client::open(url).context("BLOBPROXY_REDIS_URL is not a valid Redis URL")?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(30)));
    client
        .get_connection_manager_with_config(config)
        .await
        .with_context(|| format!("cannot connect to Redis at BLOBPROXY_REDIS_URL={url}"))
}
