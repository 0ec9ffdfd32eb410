//! A key's history: the versions S3 keeps (a versioned bucket), newest first, after the one
//! still waiting in Redis if any; and reading one version. blobproxy keeps no history of its
//! own: a version overwritten in Redis before a worker drained it never reached S3 and is not
//! listed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::{BlobService, Opened, Read, ServedBy, ServiceError};
use crate::domain::BlobKey;
use crate::store::{StoreError, StoredVersion};

/// One version of a key, or one delete.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// The version the write (or delete) returned.
    pub version: u64,
    pub size: u64,
    pub extension: String,
    /// A delete, not a blob.
    pub deleted: bool,
    /// S3 has it; `false` for the one version still waiting in Redis.
    pub persisted: bool,
    /// When S3 got it (RFC 3339); `null` while it waits in Redis.
    pub persisted_at: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct History {
    pub key: String,
    /// Newest first.
    pub versions: Vec<HistoryEntry>,
    /// Pass back as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// Where a page of history starts: at the top (the version in Redis, then S3's newest), or in
/// S3's list after one of its version ids (`None`: S3's newest, the Redis one already shown).
pub enum HistoryStart {
    Top,
    After(Option<String>),
}

impl HistoryStart {
    /// The start a cursor stands for; `None` when it is not one this service handed out.
    pub fn from_cursor(cursor: &str) -> Option<Self> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
        let id = raw.strip_prefix("s3:")?;
        // S3's version ids are short and URL-safe; anything else was not handed out here.
        let plausible = id.len() <= 1024
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+/=".contains(&b));
        plausible.then(|| HistoryStart::After((!id.is_empty()).then(|| id.to_owned())))
    }

    fn cursor_after(id: Option<&str>) -> String {
        URL_SAFE_NO_PAD.encode(format!("s3:{}", id.unwrap_or_default()))
    }
}

fn from_store(stored: StoredVersion) -> HistoryEntry {
    HistoryEntry {
        version: stored.info.version,
        size: stored.size,
        extension: stored.info.extension,
        deleted: stored.deleted,
        persisted: true,
        persisted_at: stored.stored_at,
    }
}

impl BlobService {
    /// Up to `limit` versions of `key`, newest first, from `start`.
    pub async fn history(
        &self,
        key: &BlobKey,
        start: HistoryStart,
        limit: usize,
    ) -> Result<History, ServiceError> {
        if !self.limits.history {
            return Err(ServiceError::HistoryDisabled);
        }
        let (pending, after, from_cursor) = match start {
            HistoryStart::Top => (self.pending_version(key).await?, None, false),
            HistoryStart::After(after) => (None, after, true),
        };
        let mut versions: Vec<HistoryEntry> = pending.into_iter().collect();
        let room = limit - versions.len();
        let next_cursor = if room == 0 {
            Some(HistoryStart::cursor_after(None))
        } else {
            let page = self
                .store
                .versions(key, after.as_deref(), room)
                .await
                .map_err(|e| match e {
                    // S3 refuses a version id it never handed out: the cursor was made up.
                    StoreError::Permanent(_) if from_cursor => ServiceError::BadCursor,
                    e => e.into(),
                })?;
            let stored: Vec<HistoryEntry> = page.versions.into_iter().map(from_store).collect();
            // Drained while S3 was listed: S3's entry stands for it.
            if let (Some(waiting), Some(newest)) = (versions.first(), stored.first())
                && newest.version == waiting.version
            {
                versions.clear();
            }
            versions.extend(stored);
            page.next.map(|id| HistoryStart::cursor_after(Some(&id)))
        };
        if versions.is_empty() && !from_cursor {
            return Err(ServiceError::NotFound(key.to_string()));
        }
        Ok(History {
            key: key.to_string(),
            versions,
            next_cursor,
        })
    }

    /// The version of `key` in Redis that S3 does not have yet.
    async fn pending_version(&self, key: &BlobKey) -> Result<Option<HistoryEntry>, ServiceError> {
        let summary = self
            .cache
            .summaries(&[key.to_string()])
            .await?
            .pop()
            .flatten();
        Ok(summary.filter(|s| !s.persisted).map(|s| HistoryEntry {
            version: s.version,
            size: s.size,
            extension: s.extension,
            deleted: s.deleted,
            persisted: false,
            persisted_at: None,
        }))
    }

    /// Reads `version` of `key`: from Redis when it is the cached one, else from S3 (never
    /// re-cached: the cache holds the newest version only).
    pub async fn open_version(&self, key: &BlobKey, version: u64) -> Result<Read, ServiceError> {
        let not_kept = || ServiceError::VersionNotFound(key.to_string(), version);
        if let Some(cached) = self.cache.get(key).await?
            && cached.version == version
        {
            let opened = cached.blob.map(Opened::Whole).ok_or_else(not_kept)?;
            let served_by = ServedBy::Cache;
            return Ok(Read { opened, served_by });
        }
        let object = if self.limits.history {
            self.store.open_version(key, version).await?
        } else {
            // An unversioned bucket keeps the newest version only.
            self.store.open(key).await?.filter(|o| o.version == version)
        };
        let object = object.ok_or_else(not_kept)?;
        let opened = if object.length > self.limits.write_through_bytes as u64 {
            Opened::Streaming(object)
        } else {
            Opened::Whole(object.read_all().await?)
        };
        let served_by = ServedBy::Primary;
        Ok(Read { opened, served_by })
    }
}
