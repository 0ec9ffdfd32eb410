//! Writes that name their request (`Idempotency-Key`): the first is applied and its answer
//! kept for [`REPEAT_WINDOW`]; a repeat is answered with it instead of being written again
//! (the rule itself is `layout/requests.lua`, run inside the write scripts). What makes a
//! repeat: nginx resends a PUT or DELETE to another replica when the first one dies before it
//! answers (HTTP calls them idempotent), and clients retry writes whose answer they missed.

use std::time::Duration;

use redis::AsyncCommands as _;

use super::layout::outcome;
use super::{BlobCache, CacheError, Written, parse_version};
use crate::domain::{BlobKey, IdempotencyKey};

/// How long a request's answer is kept: nginx resends within `proxy_next_upstream_timeout`
/// (10 s), clients retry within seconds; each answer costs ~100 bytes of Redis meanwhile.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(60);

/// A write's request, as the write scripts take it: the request's key, and a fingerprint of
/// the write (its key, kind and bytes), so a request key reused for another write is told
/// apart from a repeat. Empty fingerprint: the write names no request.
pub(super) struct Request {
    pub id: String,
    pub fingerprint: String,
}

impl Request {
    pub fn of(
        id: Option<&IdempotencyKey>,
        key: &BlobKey,
        kind: &str,
        extension: &str,
        content_type: &str,
        data: &[u8],
    ) -> Self {
        let Some(id) = id else {
            return Self {
                id: String::new(),
                fingerprint: String::new(),
            };
        };
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        // Each text with its length, so no two writes hash the same parts alike.
        for part in [key.as_str(), kind, extension, content_type] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        hasher.update(data);
        Self {
            id: id.as_str().to_owned(),
            fingerprint: format!("{:032x}", hasher.digest128()),
        }
    }
}

/// What a write script answered for one write: its version and [`outcome`].
pub(super) fn written(version: &str, said: &str, replicated: bool) -> Result<Written, CacheError> {
    let fresh = |queued| {
        Ok(Written {
            version: parse_version(version)?,
            replicated,
            queued,
            repeated: false,
        })
    };
    match said {
        outcome::QUEUED => fresh(true),
        outcome::DRAINING => fresh(false),
        outcome::REPEATED => Ok(Written {
            repeated: true,
            ..fresh(false)?
        }),
        outcome::REUSED => Err(CacheError::RequestReused),
        other => Err(CacheError::Protocol(format!(
            "a write script answered {other:?}"
        ))),
    }
}

impl BlobCache {
    /// The version the delete of `key` named by `id` wrote, if it did within
    /// [`REPEAT_WINDOW`]: a repeated delete of a key that is gone finds its answer here.
    pub async fn earlier_delete(
        &self,
        key: &BlobKey,
        id: &IdempotencyKey,
    ) -> Result<Option<u64>, CacheError> {
        let request = Request::of(Some(id), key, super::layout::record::TOMB, "", "", &[]);
        let keys = self.keys_of(key.as_str());
        let seen: Option<String> = self.conn().get(keys.request(&request.id)).await?;
        let Some((fingerprint, version)) = seen.as_deref().and_then(|s| s.split_once(' ')) else {
            return Ok(None);
        };
        if fingerprint != request.fingerprint {
            return Err(CacheError::RequestReused);
        }
        Ok(Some(parse_version(version)?))
    }
}

#[cfg(test)]
#[path = "requests_tests.rs"]
mod tests;
