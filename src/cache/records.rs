//! Records: a new version of a key written as dirty (with its drain job when nobody drains the
//! key yet), read back, and re-cached from S3 as clean.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use redis::{AsyncCommands as _, Script};

use super::group_commit::Queued;
use super::{BlobCache, CacheError, NEXT_VERSION_LUA, parse_version};
use crate::domain::{Blob, BlobKey};
use crate::queue::{QUEUE_JOB_LUA, new_job_id};
use crate::redis_link::{RedisLink, Shard};

/// Blobs from this size are staged instead of passed to the PUT script: below it, the extra
/// commands cost more than Lua hashing the bytes.
const STAGE_FROM_BYTES: usize = 16 * 1024;
/// A staged blob whose script never ran (the client vanished mid-write) disappears after this.
const STAGE_TTL: Duration = Duration::from_secs(60);

static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&[NEXT_VERSION_LUA, QUEUE_JOB_LUA, include_str!("put.lua")].concat())
});
static RECACHE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("recache.lua")));

/// What a PUT or DELETE wrote.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    pub version: u64,
    /// The replicas the cache asks for confirmed the write in time (true when it asks none).
    pub replicated: bool,
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
    pub persisted: bool,
}

/// A new version of a key: its bytes, or the marker of its delete.
enum NewVersion<'a> {
    Blob {
        extension: &'a str,
        content_type: &'a str,
        data: &'a [u8],
    },
    Delete,
}

impl BlobCache {
    /// Stores a new version of `key` as dirty (never expires until it is in S3).
    #[tracing::instrument(skip_all, fields(%key, size = data.len()))]
    pub async fn put(
        &self,
        key: &BlobKey,
        extension: &str,
        content_type: &str,
        data: &[u8],
    ) -> Result<Written, CacheError> {
        let version = NewVersion::Blob {
            extension,
            content_type,
            data,
        };
        self.write(key, version).await
    }

    /// Records the delete of `key` as a new, dirty version: reads answer 404 at once, and the
    /// worker removes the S3 object; an older pending upload can never bring the key back.
    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn delete(&self, key: &BlobKey) -> Result<Written, CacheError> {
        self.write(key, NewVersion::Delete).await
    }

    async fn write(&self, key: &BlobKey, new: NewVersion<'_>) -> Result<Written, CacheError> {
        let (kind, extension, content_type, data) = match new {
            NewVersion::Blob {
                extension,
                content_type,
                data,
            } => ("blob", extension, content_type, data),
            NewVersion::Delete => ("tomb", "", "", &[][..]),
        };
        let staged = data.len() >= STAGE_FROM_BYTES;
        // A small write on an HTTP thread goes with the others that thread has waiting.
        if !staged && let Some(batcher) = self.batcher() {
            let write = Queued {
                key: key.to_string(),
                kind,
                extension: extension.to_owned(),
                content_type: content_type.to_owned(),
                data: data.to_vec(),
            };
            return batcher.write(self, write).await;
        }
        let names = self.names(key.as_str());
        let job_id = new_job_id();
        let stage = names.stage(&job_id);
        let mut invocation = PUT.prepare_invoke();
        invocation
            .key(names.record(key.as_str()))
            .key(&names.version)
            .key(&names.dirty)
            .key(&names.dead);
        for queue_key in names.queue.as_array() {
            invocation.key(queue_key);
        }
        invocation
            .key(&names.dirty_by_key)
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
        let replicated = self.confirm(&mut conn, names.shard).await?;
        Ok(Written {
            version: parse_version(&version)?,
            replicated,
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
            .hmget(
                self.names(key.as_str()).record(key.as_str()),
                &["k", "d", "e", "c", "v", "s"],
            )
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
            persisted: state.as_deref() == Some("clean"),
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
            .key(self.names(key.as_str()).record(key.as_str()))
            .arg(blob.data.as_ref())
            .arg(&blob.extension)
            .arg(blob.version.to_string())
            .arg(ttl.as_secs())
            .arg(&blob.content_type)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(cached == 1)
    }

    /// Waits until the replicas this cache asks for have every write `conn` sent so far to
    /// `shard`'s master (Redis `WAIT`, on the connection that sent the write); whether they
    /// confirmed in time (true when it asks for none).
    pub(super) async fn confirm(
        &self,
        conn: &mut RedisLink,
        shard: &Shard,
    ) -> Result<bool, CacheError> {
        let Some((replicas, timeout)) = self.replica_acks else {
            return Ok(true);
        };
        let acked = conn.wait_for_replicas(shard, replicas, timeout).await?;
        Ok(acked >= u64::from(replicas))
    }
}
