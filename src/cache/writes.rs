//! Writes: a new version of a key (a blob, or the marker of its delete) stored as dirty, with
//! its drain job when nobody drains the key yet; alone (`put.lua`) or with the other small
//! writes of its HTTP thread (`put_batch.lua`, see [`super::group_commit`]). A traced write
//! records its span's context with the blob, for the drain to link to (see `put.lua`).

use std::time::Duration;

use redis::FromRedisValue as _;

use super::group_commit::Queued;
use super::layout::record;
use super::layout::scripts::{Put, PutBatch};
use super::requests::{REPEAT_WINDOW, Request, written};
use super::{BlobCache, CacheError};
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
    #[tracing::instrument(name = "redis.put", skip_all,
        fields(%key, size = data.len(), otel.kind = "client"))]
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
    #[tracing::instrument(name = "redis.delete", skip_all, fields(%key, otel.kind = "client"))]
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
        let trace = trace_of_write();
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
                trace,
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
            trace: &trace,
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
                .arg(&write.request.fingerprint)
                .arg(&write.trace);
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

/// What a write records of its trace (the record's `TRACE` field, see `put.lua`): its span's
/// `traceparent`; `-` when this process traces but not this write (an earlier write's is then
/// cleared); nothing when it does not trace.
fn trace_of_write() -> String {
    match crate::telemetry::current_traceparent() {
        Some(traceparent) => traceparent,
        None if crate::telemetry::tracing_on() => "-".to_owned(),
        None => String::new(),
    }
}
