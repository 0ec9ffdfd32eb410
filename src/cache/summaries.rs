//! Records summarised for a listing: what the cache knows of a page of keys, asked of each
//! shard the keys are in.

use super::{BlobCache, CacheError, parse_version};
use crate::redis_link::RedisLink;

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
    /// What the cache knows of each key, for a listing: `None` when it has no record. One
    /// pipeline per shard the keys are in, side by side.
    pub async fn summaries(&self, keys: &[String]) -> Result<Vec<Option<Summary>>, CacheError> {
        let mut by_shard: Vec<Vec<usize>> = vec![Vec::new(); self.every_shard().len()];
        for (at, key) in keys.iter().enumerate() {
            by_shard[self.names(key).shard.index()].push(at);
        }
        let asked = by_shard
            .iter()
            .zip(self.every_shard())
            .filter(|(ats, _)| !ats.is_empty())
            .map(|(ats, names)| {
                let keys: Vec<String> = ats.iter().map(|&at| names.record(&keys[at])).collect();
                let mut conn = self.conn();
                async move { Ok::<_, CacheError>((ats, summaries_of(&mut conn, &keys).await?)) }
            });
        let mut summaries = vec![None; keys.len()];
        for (ats, found) in futures::future::try_join_all(asked).await? {
            for (&at, summary) in ats.iter().zip(found) {
                summaries[at] = summary;
            }
        }
        Ok(summaries)
    }
}

/// [`Summary`] of each record (by its Redis key), in one pipeline.
async fn summaries_of(
    conn: &mut RedisLink,
    records: &[String],
) -> Result<Vec<Option<Summary>>, CacheError> {
    use redis::FromRedisValue as _;
    let mut pipe = redis::pipe();
    for record in records {
        pipe.hmget(record, &["k", "e", "v", "s"])
            .cmd("HSTRLEN")
            .arg(record)
            .arg("d");
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
            deleted: kind.as_deref() == Some("tomb"),
            extension: ext.unwrap_or_default(),
            version: parse_version(&version)?,
            size,
            persisted: state.as_deref() == Some("clean"),
        }));
    }
    Ok(summaries)
}
