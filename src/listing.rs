//! `GET /blobs?prefix=&limit=&cursor=`: a listing that merges the keys still only in Redis
//! with S3's listing, so a write acknowledged a moment ago is listed at once and a deleted key
//! is not, in one stable order (by key, as S3 sorts).

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt as _;
use serde::Serialize;

use crate::domain::BlobKey;
use crate::service::{BlobService, ServiceError};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Item {
    pub key: String,
    pub size: u64,
    pub extension: String,
    pub version: u64,
    /// Whether S3 holds this version already.
    pub persisted: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page {
    pub items: Vec<Item>,
    /// Pass back as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// The opaque cursor: the last key a page considered.
pub fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

pub fn decode_cursor(cursor: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()
}

pub async fn list(
    service: &BlobService,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Page, ServiceError> {
    let ((s3_objects, s3_has_more), dirty) = tokio::try_join!(
        async {
            service
                .store
                .list(prefix, after, limit)
                .await
                .map_err(ServiceError::Store)
        },
        async { Ok(service.cache.dirty_keys(prefix, after, limit).await?) },
    )?;
    let dirty_may_have_more = dirty.len() == limit;
    // The first `limit` keys of the union are exactly the next keys after `after`: each source
    // gave its first `limit`, so nothing smaller can be missing.
    let mut keys: BTreeSet<String> = s3_objects.iter().map(|(k, _)| k.clone()).collect();
    keys.extend(dirty);
    let more = s3_has_more || dirty_may_have_more || keys.len() > limit;
    let keys: Vec<String> = keys.into_iter().take(limit).collect();
    let summaries = service.cache.summaries(&keys).await?;
    let sizes: std::collections::HashMap<&str, u64> =
        s3_objects.iter().map(|(k, s)| (k.as_str(), *s)).collect();

    let mut items = Vec::with_capacity(keys.len());
    let mut undescribed = Vec::new();
    for (key, summary) in keys.iter().zip(summaries) {
        match summary {
            Some(s) if s.deleted => {} // deleted, even if S3 still has the object
            Some(s) => items.push(Item {
                key: key.clone(),
                size: s.size,
                extension: s.extension,
                version: s.version,
                persisted: !s.dirty,
            }),
            None => {
                undescribed.push(items.len());
                items.push(Item {
                    key: key.clone(),
                    size: sizes.get(key.as_str()).copied().unwrap_or(0),
                    extension: String::new(),
                    version: 0,
                    persisted: true,
                });
            }
        }
    }
    // Keys only in S3: their extension and version are in the object's metadata.
    type Described = (
        usize,
        Result<Option<(String, u64)>, crate::store::StoreError>,
    );
    let described: Vec<Described> = futures::stream::iter(undescribed)
        .map(|i| {
            let key = items[i].key.clone();
            async move {
                let result = match BlobKey::parse(key) {
                    Ok(key) => service.store.describe(&key).await,
                    Err(_) => Ok(Some((String::new(), 0))),
                };
                (i, result)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut gone = BTreeSet::new();
    for (i, result) in described {
        match result {
            Ok(Some((extension, version))) => {
                items[i].extension = extension;
                items[i].version = version;
            }
            // Deleted between the listing and now.
            Ok(None) => {
                gone.insert(i);
            }
            Err(e) => return Err(ServiceError::Store(e)),
        }
    }
    let items = items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !gone.contains(i))
        .map(|(_, item)| item)
        .collect();
    Ok(Page {
        items,
        next_cursor: more
            .then(|| keys.last().map(|k| encode_cursor(k)))
            .flatten(),
    })
}
