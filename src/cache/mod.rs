//! The Redis side: versioned records (blobs and delete markers) with their dirty/clean state,
//! the set of dirty keys, and what the worker needs to drain them ([`drain`]).
//!
//! Every multi-step change is one Lua script, so a reader never sees half a write and a PUT is
//! one round trip. This module knows nothing of HTTP or S3.
//!
//! Layout in Redis (all under the `bp:` prefix):
//! - `bp:blob:<key>`: hash `k` (`blob` or `tomb`), `d` (bytes), `e` (extension), `c` (content
//!   type), `v` (version), `s` (`dirty`/`clean`). Dirty records have no TTL, so no expiry and no `volatile-*`
//!   eviction can drop them; clean ones expire after `BLOBPROXY_CACHE_TTL_SECS`.
//! - `bp:version`: the last version handed out.
//! - `bp:dirty`: sorted set of dirty keys, scored by when they became dirty (ms).
//! - `bp:dirty-by-key`: the same keys, score 0, so they can be read in key order.
//! - `bp:lease:<key>`: `<token> <deadline ms>` of the worker (or write-through) uploading that
//!   key; no TTL, so eviction cannot drop it (see `upload_lease.lua`).
//! - `bp:dead`: hash of keys the worker gave up on (key -> JSON reason).
//! - `bp:stats`: counters of all workers (`uploads`, `upload_failures`).
//! - `bp:stage:<id>`: the bytes of a large write between its two commands (see `put.lua`).

mod drain;

pub use drain::{DeadLetter, DrainStats, Finish, WriteThrough};

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use crate::domain::{Blob, BlobKey};
use crate::jobs::QueueKeys;

const VERSION_KEY: &str = "bp:version";
pub const DIRTY_SET: &str = "bp:dirty";
pub const DEAD_LETTERS: &str = "bp:dead";
/// The dirty keys again, all with score 0 so they sort by key: lets a listing merge keys not yet
/// in S3 with S3's own (sorted) listing.
const DIRTY_BY_KEY: &str = "bp:dirty-by-key";
const LEASE_PREFIX: &str = "bp:lease:";
const STATS: &str = "bp:stats";
/// Bytes of a write on their way into a record (see `put.lua`); gone within a round trip.
const STAGE_PREFIX: &str = "bp:stage:";
/// Blobs from this size are staged instead of passed to the PUT script: below it, the extra
/// commands cost more than Lua hashing the bytes.
const STAGE_FROM_BYTES: usize = 16 * 1024;
/// A staged blob whose script never ran (the client vanished mid-write) disappears after this.
const STAGE_TTL: Duration = Duration::from_secs(60);

fn record_key(key: &BlobKey) -> String {
    format!("bp:blob:{key}")
}

fn lease_key(key: &BlobKey) -> String {
    format!("{LEASE_PREFIX}{key}")
}

// Each script hashes its source once; `invoke_async` sends EVALSHA and loads it on NOSCRIPT.
static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("next_version.lua"),
        include_str!("../jobs/queue_job.lua"),
        include_str!("put.lua")
    ))
});
static RECACHE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("recache.lua")));

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
        let whole = e.to_string();
        // A pipeline fails with every command's error; the first one is the cause (an OOM
        // refusal of the staging write makes the script after it fail too).
        let first = e
            .into_server_errors()
            .and_then(|errors| errors.first().map(|(_, error)| error.clone()));
        match first {
            Some(error) if error.code() == "OOM" => CacheError::OutOfMemory(error.to_string()),
            Some(error) => CacheError::Unavailable(error.to_string()),
            None if whole.contains("OOM command not allowed") => CacheError::OutOfMemory(whole),
            None => CacheError::Unavailable(whole),
        }
    }
}

/// What a PUT or DELETE wrote.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    pub version: u64,
    /// A drain job was queued: nobody was draining the key (it was clean, absent or
    /// dead-lettered). Otherwise the worker draining it will pick this version up.
    pub queued: bool,
}

/// A cached record: a blob, or the marker of a delete, and whether S3 already reflects it.
#[derive(Debug, Clone)]
pub struct Cached {
    /// `None` for a delete marker.
    pub blob: Option<Blob>,
    pub version: u64,
    pub dirty: bool,
}

/// A cached record as a listing shows it.
#[derive(Debug, Clone)]
pub struct Summary {
    pub deleted: bool,
    pub extension: String,
    pub version: u64,
    pub size: u64,
    pub dirty: bool,
}

/// The write-back cache. Cheap to clone: clones share one multiplexed connection, plus one
/// per HTTP worker thread once [`BlobCache::connect_this_thread`] ran there.
#[derive(Clone)]
pub struct BlobCache {
    shared: ConnectionManager,
    /// Tells this cache's per-thread connections from another's (tests run several).
    id: u64,
    url: std::sync::Arc<str>,
}

thread_local! {
    /// Per-thread connections, by cache id. An HTTP worker thread that talks to Redis through
    /// a connection driven on another thread pays two thread hand-offs per command; perf
    /// showed the replica spending ~20% of its time in context switches on 1 KiB writes.
    static THREAD_CONNECTIONS: std::cell::RefCell<Vec<(u64, ConnectionManager)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl BlobCache {
    pub fn new(conn: ConnectionManager, url: &str) -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self {
            shared: conn,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            url: url.into(),
        }
    }

    /// Opens a connection owned by the calling thread's runtime (an HTTP worker thread), used
    /// from then on by every call made on this thread. Until it is up, or if it fails, the
    /// shared connection serves.
    pub fn connect_this_thread(&self) {
        let (id, url) = (self.id, self.url.clone());
        actix_web::rt::spawn(async move {
            match connect(&url).await {
                Ok(conn) => THREAD_CONNECTIONS.with(|c| c.borrow_mut().push((id, conn))),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "no per-thread Redis connection; using the shared one")
                }
            }
        });
    }

    /// This thread's connection if it has one, else the shared one.
    fn conn(&self) -> ConnectionManager {
        THREAD_CONNECTIONS
            .with(|c| {
                c.borrow()
                    .iter()
                    .find(|(id, _)| *id == self.id)
                    .map(|(_, conn)| conn.clone())
            })
            .unwrap_or_else(|| self.shared.clone())
    }

    pub fn connection(&self) -> ConnectionManager {
        self.shared.clone()
    }

    /// Stores a new version of `key` as dirty (never expires until it is in S3).
    #[tracing::instrument(skip_all, fields(%key, size = data.len()))]
    pub async fn put(
        &self,
        key: &BlobKey,
        extension: &str,
        content_type: &str,
        data: &[u8],
        queue: &QueueKeys,
    ) -> Result<Written, CacheError> {
        self.write(key, extension, content_type, data, "blob", queue)
            .await
    }

    /// Records the delete of `key` as a new, dirty version: reads answer 404 at once, and the
    /// worker removes the S3 object; an older pending upload can never bring the key back.
    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn delete(&self, key: &BlobKey, queue: &QueueKeys) -> Result<Written, CacheError> {
        self.write(key, "", "", &[], "tomb", queue).await
    }

    async fn write(
        &self,
        key: &BlobKey,
        extension: &str,
        content_type: &str,
        data: &[u8],
        kind: &str,
        queue: &QueueKeys,
    ) -> Result<Written, CacheError> {
        let job_id = crate::jobs::queue::new_job_id();
        let stage = format!("{STAGE_PREFIX}{job_id}");
        let staged = data.len() >= STAGE_FROM_BYTES;
        let mut invocation = PUT.prepare_invoke();
        invocation
            .key(record_key(key))
            .key(VERSION_KEY)
            .key(DIRTY_SET)
            .key(DEAD_LETTERS);
        for queue_key in queue.as_array() {
            invocation.key(queue_key);
        }
        invocation
            .key(DIRTY_BY_KEY)
            .key(&stage)
            .arg(if staged { &[][..] } else { data })
            .arg(extension)
            .arg(key.as_str())
            .arg(kind)
            .arg(content_type)
            .arg(&job_id)
            .arg(if staged { "staged" } else { "" });
        let mut conn = self.conn();
        let (version, queued): (String, i64) = if staged {
            // One round trip: the bytes go to a staging hash with plain commands, and the
            // script moves it into place (see put.lua for why the bytes stay out of Lua).
            // MULTI/EXEC, because a full Redis evicts volatile keys before every command it
            // runs, and the staged hash (with its TTL) must not be evicted before the script.
            let mut pipe = redis::pipe();
            pipe.atomic()
                .hset(&stage, "d", data)
                .ignore()
                .pexpire(&stage, STAGE_TTL.as_millis() as i64)
                .ignore()
                .invoke_script(&invocation);
            match pipe.query_async::<((String, i64),)>(&mut conn).await {
                Ok((written,)) => written,
                // Redis lost its script cache (restart, SCRIPT FLUSH): the staged bytes are
                // still there, so loading the script and running it again completes the write.
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    invocation.invoke_async(&mut conn).await?
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            invocation.invoke_async(&mut conn).await?
        };
        Ok(Written {
            version: parse_version(&version)?,
            queued: queued == 1,
        })
    }

    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn get(&self, key: &BlobKey) -> Result<Option<Cached>, CacheError> {
        type Fields = (
            Option<String>,
            Option<Vec<u8>>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let (kind, data, ext, content_type, version, state): Fields = self
            .conn()
            .hmget(record_key(key), &["k", "d", "e", "c", "v", "s"])
            .await?;
        let Some(version) = version else {
            return Ok(None);
        };
        let version = parse_version(&version)?;
        let blob = match (kind.as_deref(), data) {
            (Some("tomb"), _) => None,
            (_, Some(data)) => Some(Blob {
                data: Bytes::from(data),
                extension: ext.unwrap_or_default(),
                content_type: content_type.unwrap_or_else(|| "application/octet-stream".into()),
                version,
            }),
            (_, None) => return Ok(None), // a partial record cannot exist; treat as a miss
        };
        Ok(Some(Cached {
            blob,
            version,
            dirty: state.as_deref() != Some("clean"),
        }))
    }

    /// Caches a blob read from S3 as clean, unless the key has a record already (a newer dirty
    /// version or a delete written meanwhile must win). Returns whether it was cached.
    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn recache(
        &self,
        key: &BlobKey,
        blob: &Blob,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let cached: i64 = RECACHE
            .key(record_key(key))
            .arg(blob.data.as_ref())
            .arg(&blob.extension)
            .arg(blob.version.to_string())
            .arg(ttl.as_secs())
            .arg(&blob.content_type)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(cached == 1)
    }

    /// Up to `limit` dirty keys starting with `prefix`, after `after`, in key order.
    pub async fn dirty_keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, CacheError> {
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
        Ok(redis::cmd("ZRANGEBYLEX")
            .arg(DIRTY_BY_KEY)
            .arg(min)
            .arg(max)
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.conn())
            .await?)
    }

    /// What the cache knows of each key, for a listing: `None` when it has no record.
    pub async fn summaries(&self, keys: &[String]) -> Result<Vec<Option<Summary>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            let record = format!("bp:blob:{key}");
            pipe.hmget(&record, &["k", "e", "v", "s"])
                .cmd("HSTRLEN")
                .arg(&record)
                .arg("d");
        }
        type Fields = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let flat: Vec<redis::Value> = pipe.query_async(&mut self.conn()).await?;
        let mut replies: Vec<(Fields, u64)> = Vec::with_capacity(keys.len());
        let mut values = flat.into_iter();
        while let (Some(fields), Some(size)) = (values.next(), values.next()) {
            use redis::FromRedisValue as _;
            let parse = |e: redis::ParsingError| CacheError::Protocol(e.to_string());
            replies.push((
                Fields::from_redis_value(fields).map_err(parse)?,
                u64::from_redis_value(size).map_err(parse)?,
            ));
        }
        replies
            .into_iter()
            .map(|((kind, ext, version, state), size)| {
                let Some(version) = version else {
                    return Ok(None);
                };
                Ok(Some(Summary {
                    deleted: kind.as_deref() == Some("tomb"),
                    extension: ext.unwrap_or_default(),
                    version: parse_version(&version)?,
                    size,
                    dirty: state.as_deref() != Some("clean"),
                }))
            })
            .collect()
    }

    /// Number of records not yet reflected in S3.
    pub async fn dirty_count(&self) -> Result<u64, CacheError> {
        Ok(self.conn().zcard(DIRTY_SET).await?)
    }

    /// Age of the oldest dirty record, if any.
    pub async fn oldest_dirty_age(&self) -> Result<Option<Duration>, CacheError> {
        let oldest: Vec<(String, f64)> = self.conn().zrange_withscores(DIRTY_SET, 0, 0).await?;
        let now = now_ms() as f64;
        Ok(oldest
            .first()
            .map(|(_, since)| Duration::from_millis((now - since).max(0.0) as u64)))
    }

    /// Answers PING; used by readiness checks.
    pub async fn ping(&self) -> Result<(), CacheError> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(())
    }

    /// Refuses a Redis whose eviction policy could drop records not yet in S3 (they have no
    /// TTL, so only `allkeys-*` policies can evict them). Returns the policy, or `None` when
    /// CONFIG is not available (managed Redis): then the operator is trusted.
    pub async fn check_eviction_policy(&self) -> anyhow::Result<Option<String>> {
        let reply: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut self.conn())
            .await;
        let Ok(reply) = reply else {
            return Ok(None);
        };
        let Some(policy) = reply.get(1).cloned() else {
            return Ok(None);
        };
        if policy.starts_with("allkeys") {
            anyhow::bail!(
                "Redis maxmemory-policy is {policy}, which can evict blobs not yet stored in S3; \
                 set it to volatile-lru (evicts only blobs already in S3) or noeviction"
            );
        }
        Ok(Some(policy))
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
