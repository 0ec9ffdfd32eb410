//! Reads: a key's record (a blob or a delete marker), a blob read from S3 cached again as
//! clean (`recache.lua`), what the cache knows of a page of keys for a listing, and a blob's
//! size without its bytes.

use std::time::Duration;

use bytes::Bytes;
use redis::AsyncCommands as _;

use super::layout::record;
use super::layout::scripts::Recache;
use super::{BlobCache, CacheError, parse_version};
use crate::domain::{Blob, BlobKey};
use crate::redis_link::RedisLink;

/// A cached record: a blob, or the marker of a delete, and whether S3 already reflects it.
#[derive(Debug, Clone)]
pub struct Cached {
    /// `None` for a delete marker.
    pub blob: Option<Blob>,
    pub version: u64,
    pub persisted: bool,
    /// The `traceparent` of the write of this version, when it was traced.
    pub trace: Option<String>,
}

/// A cached record as a listing shows it.
#[derive(Debug, Clone)]
pub struct Summary {
    pub deleted: bool,
    pub extension: String,
    pub version: u64,
    pub size: u64,
    pub persisted: bool,
}

impl BlobCache {
    pub async fn get(&self, key: &BlobKey) -> Result<Option<Cached>, CacheError> {
        self.get_by_name(key.as_str()).await
    }

    /// The record of a key named by any string: also one this version's key rules refuse,
    /// written under an earlier version's (a dead letter an operator reads or moves).
    #[tracing::instrument(name = "redis.get", skip_all, fields(%key, otel.kind = "client"))]
    pub async fn get_by_name(&self, key: &str) -> Result<Option<Cached>, CacheError> {
        type Fields = (
            Option<String>,
            Option<Vec<u8>>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let (kind, data, ext, content_type, version, state, trace): Fields = self
            .conn()
            .hmget(
                self.keys_of(key).record(key),
                &[
                    record::KIND,
                    record::DATA,
                    record::EXTENSION,
                    record::CONTENT_TYPE,
                    record::VERSION,
                    record::STATE,
                    record::TRACE,
                ],
            )
            .await?;
        let Some(version) = version else {
            return Ok(None);
        };
        let version = parse_version(&version)?;
        let blob = match (kind.as_deref(), data) {
            (Some(record::TOMB), _) => None,
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
            persisted: state.as_deref() == Some(record::CLEAN),
            trace,
        }))
    }

    /// Caches a blob read from S3 as clean, unless the key has a record already (a newer dirty
    /// version or a delete written meanwhile must win). Returns whether it was cached.
    #[tracing::instrument(name = "redis.recache", skip_all, fields(%key, otel.kind = "client"))]
    pub async fn recache(
        &self,
        key: &BlobKey,
        blob: &Blob,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let record = self.keys_of(key.as_str()).record(key.as_str());
        let recache = Recache {
            record: &record,
            data: &blob.data,
            extension: &blob.extension,
            version: blob.version,
            ttl_secs: ttl.as_secs(),
            content_type: &blob.content_type,
        };
        let cached: i64 = recache.invocation().invoke_async(&mut self.conn()).await?;
        Ok(cached == 1)
    }

    /// What the cache knows of each key, for a listing: `None` when it has no record. One
    /// pipeline per shard the keys are in, side by side.
    pub async fn summaries(&self, keys: &[String]) -> Result<Vec<Option<Summary>>, CacheError> {
        let mut by_shard: Vec<Vec<usize>> = vec![Vec::new(); self.every_shard().len()];
        for (at, key) in keys.iter().enumerate() {
            by_shard[self.shard_of(key).index()].push(at);
        }
        let asked = by_shard
            .iter()
            .zip(self.every_shard())
            .filter(|(ats, _)| !ats.is_empty())
            .map(|(ats, shard)| {
                let records: Vec<String> = ats.iter().map(|&at| shard.record(&keys[at])).collect();
                let mut conn = self.conn();
                async move { Ok::<_, CacheError>((ats, summaries_of(&mut conn, &records).await?)) }
            });
        let mut summaries = vec![None; keys.len()];
        for (ats, found) in futures::future::try_join_all(asked).await? {
            for (&at, summary) in ats.iter().zip(found) {
                summaries[at] = summary;
            }
        }
        Ok(summaries)
    }

    /// The size of `key`'s cached bytes (0 for a delete marker or no record), without them.
    pub async fn blob_size(&self, key: &BlobKey) -> Result<u64, CacheError> {
        Ok(redis::cmd("HSTRLEN")
            .arg(self.keys_of(key.as_str()).record(key.as_str()))
            .arg(record::DATA)
            .query_async(&mut self.conn())
            .await?)
    }
}

/// [`Summary`] of each record (by its Redis key), in one pipeline.
async fn summaries_of(
    conn: &mut RedisLink,
    records: &[String],
) -> Result<Vec<Option<Summary>>, CacheError> {
    use redis::FromRedisValue as _;
    let mut pipe = redis::pipe();
    for name in records {
        pipe.hmget(
            name,
            &[
                record::KIND,
                record::EXTENSION,
                record::VERSION,
                record::STATE,
            ],
        )
        .cmd("HSTRLEN")
        .arg(name)
        .arg(record::DATA);
    }
    type Fields = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let flat: Vec<redis::Value> = pipe.query_async(conn).await?;
    let parse = |e: redis::ParsingError| CacheError::Protocol(e.to_string());
    let mut summaries = Vec::with_capacity(records.len());
    let mut values = flat.into_iter();
    while let (Some(fields), Some(size)) = (values.next(), values.next()) {
        let (kind, ext, version, state) = Fields::from_redis_value(fields).map_err(parse)?;
        let size = u64::from_redis_value(size).map_err(parse)?;
        let Some(version) = version else {
            summaries.push(None);
            continue;
        };
        summaries.push(Some(Summary {
            deleted: kind.as_deref() == Some(record::TOMB),
            extension: ext.unwrap_or_default(),
            version: parse_version(&version)?,
            size,
            persisted: state.as_deref() == Some(record::CLEAN),
        }));
    }
    Ok(summaries)
}
