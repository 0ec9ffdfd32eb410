//! Reads: the cache first (a Redis error never falls through to S3, which may be older),
//! else the primary store (and re-cache), else, when the primary store fails, a mirror store
//! that is owed nothing newer of the key.

use super::{BlobService, ServiceError};
use crate::domain::{Blob, BlobKey};
use crate::store::StoredObject;

/// A blob being read: whole, or streaming from S3 (see [`BlobService::open`]).
pub enum Opened {
    Whole(Blob),
    Streaming(StoredObject),
}

impl Opened {
    pub async fn read_all(self) -> Result<Blob, ServiceError> {
        match self {
            Opened::Whole(blob) => Ok(blob),
            Opened::Streaming(object) => Ok(object.read_all().await?),
        }
    }
}

/// A read's blob and where it came from.
pub struct Read {
    pub opened: Opened,
    pub served_by: ServedBy,
}

/// Where a read's bytes came from (the `X-Blob-Store` header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServedBy {
    Cache,
    Primary,
    /// A mirror store, by name: the primary store failed.
    Mirror(String),
}

impl ServedBy {
    pub fn header_value(&self) -> String {
        match self {
            ServedBy::Cache => "cache".to_owned(),
            ServedBy::Primary => "primary".to_owned(),
            ServedBy::Mirror(name) => format!("mirror:{name}"),
        }
    }
}

impl BlobService {
    /// Reads the newest version of a blob, whole.
    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn get(&self, key: &BlobKey) -> Result<Blob, ServiceError> {
        self.open(key).await?.opened.read_all().await
    }

    /// Reads the newest version of a blob: whole when it is cached or small, else (a blob
    /// over the write-through size, only in S3) as a stream straight from S3, so a replica
    /// never holds such a blob whole, nor puts it in the cache.
    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn open(&self, key: &BlobKey) -> Result<Read, ServiceError> {
        // A Redis error must not fall through to S3: Redis may hold a newer, dirty version.
        let cached = self.cache.get(key).await?;
        crate::metrics::cache_lookup(cached.is_some());
        if let Some(cached) = cached {
            let blob = cached
                .blob
                .ok_or_else(|| ServiceError::NotFound(key.to_string()))?;
            return Ok(Read {
                opened: Opened::Whole(blob),
                served_by: ServedBy::Cache,
            });
        }
        let (object, served_by) = match self.store.open(key).await {
            Ok(Some(object)) => (object, ServedBy::Primary),
            Ok(None) => return Err(ServiceError::NotFound(key.to_string())),
            Err(failed) => match self.open_on_a_mirror(key).await {
                Some((object, mirror)) => (object, ServedBy::Mirror(mirror)),
                None => return Err(failed.into()),
            },
        };
        if object.length > self.limits.write_through_bytes as u64 {
            let opened = Opened::Streaming(object);
            return Ok(Read { opened, served_by });
        }
        let blob = object.read_all().await?;
        if let Err(e) = self.cache.recache(key, &blob, self.limits.cache_ttl).await {
            tracing::warn!(error = %e, "cannot re-cache a blob read from S3");
        }
        let opened = Opened::Whole(blob);
        Ok(Read { opened, served_by })
    }

    /// The primary store failed to open `key`: its object from the first mirror that has the
    /// newest version the primary got (one not owed a newer one), if any. A mirror without
    /// the object answers nothing: only the primary store says a key does not exist.
    async fn open_on_a_mirror(&self, key: &BlobKey) -> Option<(StoredObject, String)> {
        if self.mirrors.is_empty() {
            return None;
        }
        let owing = match self.cache.mirrors_owing(key.as_str()).await {
            Ok(owing) => owing,
            Err(error) => {
                tracing::warn!(%error, "cannot tell which mirrors are behind; not reading them");
                return None;
            }
        };
        for (name, mirror) in self.mirrors.iter() {
            if owing.contains(name) {
                continue;
            }
            match mirror.open(key).await {
                Ok(Some(object)) => {
                    tracing::warn!(mirror = %name, "the primary store failed; read from a mirror");
                    crate::metrics::read_from_mirror(name);
                    return Some((object, name.clone()));
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(mirror = %name, %error, "a mirror failed too"),
            }
        }
        None
    }
}
