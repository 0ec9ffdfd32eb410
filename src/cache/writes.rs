//! Writes: a new version of a key (a blob, or the marker of its delete) stored as dirty, with
//! its drain job when nobody drains the key yet; alone (`put.lua`) or with the other small
//! writes of its HTTP thread (`put_batch.lua`, see [`super::group_commit`]). And the two
//! Redis steps of a write-through (a blob too large for the cache, streamed straight to S3):
//! take the key's lease and a version before the upload, settle the cache after it. Both may
//! run when Redis is full: they store no blob bytes, and the second frees memory.

use std::time::Duration;

use redis::FromRedisValue as _;

use super::group_commit::Queued;
use super::layout::record;
use super::layout::scripts::{Put, PutBatch, WriteThroughBegin, WriteThroughFinish};
use super::requests::{REPEAT_WINDOW, Request, written};
use super::{BlobCache, CacheError, UploadLease, parse_version};
use crate::domain::{BlobKey, IdempotencyKey};
use crate::queue::new_job_id;
use crate::redis_link::RedisLink;

/// Blobs from this size are staged instead of passed to the PUT script: below it, the extra
/// commands cost more than Lua hashing the bytes.
const STAGE_FROM_BYTES: usize = 16 * 1024;
/// A staged blob whose script never ran (the client vanished mid-write) disappears after this.
const STAGE_TTL: Duration = Duration::from_secs(60);

/// What a PUT or DELETE wrote.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    pub version: u64,
    /// The replicas the cache asks for confirmed the write in time (true when it asks none).
    pub replicated: bool,
    /// A drain job was queued: nobody was draining the key (it was clean, absent or
    /// dead-lettered). Otherwise the worker draining it will pick this version up.
    pub queued: bool,
    /// Nothing was written: the write repeated the request that wrote `version`.
    pub repeated: bool,
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
    /// Stores a new version of `key` as dirty (never expires until it is in S3). A write that
    /// names its request (`request`) is applied once: a repeat is answered, not written.
    #[tracing::instrument(skip_all, fields(%key, size = data.len()))]
    pub async fn put(
        &self,
        key: &BlobKey,
        extension: &str,
        content_type: &str,
        data: &[u8],
        request: Option<&IdempotencyKey>,
    ) -> Result<Written, CacheError> {
        let version = NewVersion::Blob {
            extension,
            content_type,
            data,
        };
        self.write(key, version, request).await
    }

    /// Records the delete of `key` as a new, dirty version: reads answer 404 at once, and the
    /// worker removes the S3 object; an older pending upload can never bring the key back.
    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn delete(
        &self,
        key: &BlobKey,
        request: Option<&IdempotencyKey>,
    ) -> Result<Written, CacheError> {
        self.write(key, NewVersion::Delete, request).await
    }

    async fn write(
        &self,
        key: &BlobKey,
        new: NewVersion<'_>,
        request: Option<&IdempotencyKey>,
    ) -> Result<Written, CacheError> {
        let (kind, extension, content_type, data) = match new {
            NewVersion::Blob {
                extension,
                content_type,
                data,
            } => (record::BLOB, extension, content_type, data),
            NewVersion::Delete => (record::TOMB, "", "", &[][..]),
        };
        let request = Request::of(request, key, kind, extension, content_type, data);
        let staged = data.len() >= STAGE_FROM_BYTES;
        // A small write on an HTTP thread goes with the others that thread has waiting.
        if !staged && let Some(batcher) = self.batcher() {
            let write = Queued {
                key: key.to_string(),
                kind,
                extension: extension.to_owned(),
                content_type: content_type.to_owned(),
                data: data.to_vec(),
                request,
            };
            return batcher.write(self, write).await;
        }
        let keys = self.keys_of(key.as_str());
        let job_id = new_job_id();
        let stage = keys.stage(&job_id);
        let record = keys.record(key.as_str());
        let request_key = keys.request(&request.id);
        let put = Put {
            record: &record,
            version_counter: &keys.version,
            dirty: &keys.dirty,
            dead: &keys.dead,
            queue_data: &keys.queue.data,
            queue_meta: &keys.queue.meta,
            queue_active: &keys.queue.active,
            dirty_by_key: &keys.dirty_by_key,
            stage: &stage,
            retry: &keys.retry,
            request: &request_key,
            data: if staged { &[][..] } else { data },
            extension,
            key: key.as_str(),
            kind,
            content_type,
            job_id: &job_id,
            staged,
            fingerprint: &request.fingerprint,
            window_secs: REPEAT_WINDOW.as_secs(),
        };
        let invocation = put.invocation();
        let mut conn = self.conn();
        let (version, outcome): (String, String) = if staged {
            // One round trip: the bytes go to a staging hash with plain commands, and the
            // script moves it into place (see put.lua for why the bytes stay out of Lua).
            // MULTI/EXEC, because a full Redis evicts volatile keys before every command it
            // runs, and the staged hash (with its TTL) must not be evicted before the script.
            let mut pipe = redis::pipe();
            pipe.atomic()
                .hset(&stage, record::DATA, data)
                .ignore()
                .pexpire(&stage, STAGE_TTL.as_millis() as i64)
                .ignore()
                .invoke_script(&invocation);
            match pipe.query_async::<((String, String),)>(&mut conn).await {
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
        let replicated = self.confirm(&mut conn, keys.shard).await?;
        written(&version, &outcome, replicated)
    }

    /// Runs `put_batch.lua` for `writes` (all of one shard) on `conn`, then waits for
    /// the replicas it asks for. Each write's answer, or the batch's error.
    pub(super) async fn write_batch(
        &self,
        mut conn: RedisLink,
        writes: &[&Queued],
    ) -> Result<Vec<Result<Written, CacheError>>, CacheError> {
        let keys = self.keys_of(&writes[0].key);
        let job_id = new_job_id();
        let mut invocation = PutBatch {
            version_counter: &keys.version,
            dirty: &keys.dirty,
            dead: &keys.dead,
            queue_data: &keys.queue.data,
            queue_meta: &keys.queue.meta,
            queue_active: &keys.queue.active,
            dirty_by_key: &keys.dirty_by_key,
            retry: &keys.retry,
            job_id: &job_id,
            window_secs: REPEAT_WINDOW.as_secs(),
        }
        .invocation();
        for write in writes {
            invocation
                .key(keys.record(&write.key))
                .key(keys.request(&write.request.id))
                .arg(&write.data[..])
                .arg(&write.extension)
                .arg(&write.key)
                .arg(write.kind)
                .arg(&write.content_type)
                .arg(&write.request.fingerprint);
        }
        let reply: Vec<redis::Value> = invocation.invoke_async(&mut conn).await?;
        let replicated = self.confirm(&mut conn, keys.shard).await?;
        let parse = |e: redis::ParsingError| CacheError::Protocol(e.to_string());
        let n = writes.len();
        if reply.len() != 2 * n {
            return Err(CacheError::Protocol(format!(
                "put_batch.lua answered {} values for {n} writes",
                reply.len()
            )));
        }
        let (versions, outcomes) = reply.split_at(n);
        versions
            .iter()
            .zip(outcomes)
            .map(|(version, outcome)| {
                let version = String::from_redis_value(version.clone()).map_err(parse)?;
                let outcome = String::from_redis_value(outcome.clone()).map_err(parse)?;
                Ok(written(&version, &outcome, replicated))
            })
            .collect()
    }
}

/// Outcome of [`BlobCache::finish_write_through`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteThrough {
    /// S3 holds the newest version: ours. Any older cached record is gone.
    Stored,
    /// A newer write arrived while ours was uploading; it stays (and is queued if dirty).
    Newer,
    /// The lease expired mid-upload: another writer may have stored the key meanwhile.
    Lost,
}

impl BlobCache {
    /// Takes `key`'s upload lease for a write-through and hands out its version, or `None`
    /// while a worker or another write-through holds the lease.
    pub async fn begin_write_through(
        &self,
        key: &BlobKey,
        ttl: Duration,
    ) -> Result<Option<(UploadLease, u64)>, CacheError> {
        let token = UploadLease::new_token();
        let keys = self.keys_of(key.as_str());
        let lease = keys.lease(key.as_str());
        let version: Option<String> = WriteThroughBegin {
            lease: &lease,
            version_counter: &keys.version,
            token: &token,
            ttl_ms: (ttl.as_millis() as u64).max(1),
        }
        .invocation()
        .invoke_async(&mut self.conn())
        .await?;
        let Some(version) = version else {
            return Ok(None);
        };
        let lease = UploadLease::taken(self, key, token, ttl);
        Ok(Some((lease, parse_version(&version)?)))
    }

    /// Records that S3 now holds `version` of `key`, written through; releases the lease.
    pub async fn finish_write_through(
        &self,
        key: &BlobKey,
        lease: &UploadLease,
        version: u64,
    ) -> Result<WriteThrough, CacheError> {
        let keys = self.keys_of(key.as_str());
        let (record, lease_key) = (keys.record(key.as_str()), keys.lease(key.as_str()));
        let outcome: String = WriteThroughFinish {
            record: &record,
            lease: &lease_key,
            dirty: &keys.dirty,
            dirty_by_key: &keys.dirty_by_key,
            dead: &keys.dead,
            queue_data: &keys.queue.data,
            queue_meta: &keys.queue.meta,
            queue_active: &keys.queue.active,
            retry: &keys.retry,
            failing: &keys.failing,
            failures: &keys.failures,
            token: lease.token(),
            version,
            key: key.as_str(),
            job_id: &new_job_id(),
        }
        .invocation()
        .invoke_async(&mut self.conn())
        .await?;
        match outcome.as_str() {
            "stored" => Ok(WriteThrough::Stored),
            "newer" => Ok(WriteThrough::Newer),
            "lost" => Ok(WriteThrough::Lost),
            other => Err(CacheError::Protocol(format!(
                "unexpected write-through outcome {other:?}"
            ))),
        }
    }
}
