//! A key's history on a versioned bucket: S3 keeps every version; blobproxy only reads them.
//! Listing gives S3's version ids, sizes and times; the blobproxy version and extension live in
//! each version's metadata, so each listed version costs one HEAD (run a few at a time). A
//! delete is the empty version marked `deleted` that [`S3Store`]'s delete writes before S3's
//! delete marker; the markers themselves are skipped (they carry no metadata, and S3 servers
//! differ in where they list them among the versions).

use aws_sdk_s3::primitives::{ByteStream, DateTimeFormat};
use futures::{StreamExt as _, TryStreamExt as _};

use super::S3Store;
use crate::domain::BlobKey;
use crate::store::classify::classify;
use crate::store::metadata;
use crate::store::{StoreResult, StoredObject, StoredVersion, VersionPage};

/// HEADs in flight while a page of versions is described.
const CONCURRENT_HEADS: usize = 8;
/// Versions looked at per listing call while searching for one version.
const SEARCH_PAGE: usize = 16;

/// One version in S3's listing, before its metadata is read.
struct Listed {
    id: String,
    size: u64,
    modified: Option<aws_sdk_s3::primitives::DateTime>,
}

impl S3Store {
    /// Writes the empty version that stands for the delete numbered `version` in the history.
    /// It goes before S3's delete: a crash between the two leaves it as the newest version,
    /// which reads treat as absent, and the drain's retry deletes again.
    pub(super) async fn mark_deleted(&self, key: &BlobKey, version: u64) -> StoreResult<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .body(ByteStream::from_static(b""))
            .set_metadata(Some(metadata::of_delete(version)))
            .send()
            .await
            .map_err(|e| classify(e).unwrap_or_else(|e| self.bucket_missing(e)))?;
        Ok(())
    }

    /// Up to `max` versions of `key`, newest first, after S3's version id `after`.
    pub(super) async fn list_versions(
        &self,
        key: &BlobKey,
        after: Option<&str>,
        max: usize,
    ) -> StoreResult<VersionPage> {
        let (listed, next) = self.list_page(key, after, max).await?;
        let described: Vec<Option<StoredVersion>> = futures::stream::iter(listed)
            .map(|entry| self.describe_version(key, entry))
            .buffered(CONCURRENT_HEADS)
            .try_collect()
            .await?;
        let mut versions: Vec<StoredVersion> = described.into_iter().flatten().collect();
        // Newest first, as S3 lists them; by blobproxy version, which orders them exactly.
        versions.sort_by_key(|v| std::cmp::Reverse(v.info.version));
        Ok(VersionPage { versions, next })
    }

    /// The version of `key` whose blobproxy version is `version`, opened; `None` when S3 does
    /// not keep it. Versions only grow, so the search stops at the first older one.
    pub(super) async fn find_version(
        &self,
        key: &BlobKey,
        version: u64,
    ) -> StoreResult<Option<StoredObject>> {
        let mut after: Option<String> = None;
        loop {
            let page = self
                .list_versions(key, after.as_deref(), SEARCH_PAGE)
                .await?;
            for entry in &page.versions {
                if entry.info.version == version && !entry.deleted {
                    return self.open_object(key, Some(&entry.id)).await;
                }
                if entry.info.version <= version {
                    return Ok(None);
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(None),
            }
        }
    }

    /// One listing call: the entries of exactly `key` (the prefix also matches `key/...`),
    /// newest first, and S3's version id to continue after when more of them may follow.
    async fn list_page(
        &self,
        key: &BlobKey,
        after: Option<&str>,
        max: usize,
    ) -> StoreResult<(Vec<Listed>, Option<String>)> {
        let mut request = self
            .client
            .list_object_versions()
            .bucket(&self.bucket)
            .prefix(key.as_str())
            .max_keys(max as i32);
        if let Some(after) = after {
            request = request.key_marker(key.as_str()).version_id_marker(after);
        }
        let page = request
            .send()
            .await
            .map_err(|e| classify(e).unwrap_or_else(|e| self.bucket_missing(e)))?;
        let ours = |k: Option<&str>| k == Some(key.as_str());
        let listed = page
            .versions()
            .iter()
            .filter(|v| ours(v.key()))
            .map(|v| Listed {
                id: v.version_id().unwrap_or("null").to_owned(),
                size: v.size().unwrap_or(0).max(0) as u64,
                modified: v.last_modified().copied(),
            })
            .collect();
        let more_of_ours = page.is_truncated() == Some(true) && ours(page.next_key_marker());
        let next = more_of_ours
            .then(|| page.next_version_id_marker().map(str::to_owned))
            .flatten();
        Ok((listed, next))
    }

    /// A listed version with its blobproxy metadata; `None` when it vanished since the listing.
    async fn describe_version(
        &self,
        key: &BlobKey,
        entry: Listed,
    ) -> StoreResult<Option<StoredVersion>> {
        let Some((info, deleted)) = self.describe_object(key, Some(&entry.id)).await? else {
            return Ok(None);
        };
        Ok(Some(StoredVersion {
            id: entry.id,
            info,
            deleted,
            size: entry.size,
            stored_at: entry
                .modified
                .and_then(|t| t.fmt(DateTimeFormat::DateTime).ok()),
        }))
    }
}
