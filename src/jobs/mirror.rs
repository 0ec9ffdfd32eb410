//! Keeping the mirror stores in step: for each mirror, a copier takes the keys the mirror is
//! owed (see [`crate::cache::BlobCache::mirror_due`]) and copies the primary store's object of
//! each (or its absence: a delete) to the mirror, with its version and extension.
//!
//! Why order holds: a copier always copies what the primary store holds now, which is the
//! newest version the primary got; only the holder of a key's lease (one per mirror) copies
//! it; a version the primary gets while a copy runs leaves the key owed, so it is copied
//! again; and a copier that outlived its lease makes the key due again at once, since its
//! late write may have landed over a newer copy. A failed copy is retried on a backoff, the
//! error kept for `/status`; the key is never dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::Semaphore;

use crate::cache::{Backoff, BlobCache, CacheError, MirrorCopy};
use crate::domain::BlobKey;
use crate::store::{BlobStore, StoreError};

/// How long a copier holds a key without finishing before another may take it.
const COPY_LEASE: Duration = Duration::from_secs(60);
/// How long a stopping copier waits for its copies under way.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Keys fetched per shard per round.
const BATCH: usize = 256;

/// How fast a copier goes.
#[derive(Debug, Clone, Copy)]
pub struct CopyPace {
    /// Copies at once.
    pub concurrency: usize,
    /// Bytes of blobs held at once.
    pub max_bytes: usize,
    /// When a failed copy is tried again.
    pub retry: Backoff,
    /// How long an idle copier waits before it looks again.
    pub poll: Duration,
}

/// Copies what one mirror is owed.
#[derive(Clone)]
pub struct MirrorCopier {
    pub name: String,
    cache: BlobCache,
    primary: Arc<dyn BlobStore>,
    mirror: Arc<dyn BlobStore>,
    /// Copies at once.
    concurrency: usize,
    /// Bytes of blobs held at once on their way (`BLOBPROXY_WORKER_MAX_BYTES`), one permit
    /// per byte: many small copies, or a few large ones.
    bytes: Arc<Semaphore>,
    max_bytes: u32,
    retry: Backoff,
    /// How long an idle copier waits before it looks again.
    poll: Duration,
    /// Set when the worker stops: no new key is claimed, copies under way finish.
    stopping: Arc<AtomicBool>,
}

impl MirrorCopier {
    pub fn new(
        name: String,
        cache: BlobCache,
        primary: Arc<dyn BlobStore>,
        mirror: Arc<dyn BlobStore>,
        pace: CopyPace,
    ) -> Self {
        let max_bytes = u32::try_from(pace.max_bytes).unwrap_or(u32::MAX).max(1);
        Self {
            name,
            cache,
            primary,
            mirror,
            concurrency: pace.concurrency,
            bytes: Arc::new(Semaphore::new(max_bytes as usize)),
            max_bytes,
            retry: pace.retry,
            poll: pace.poll,
            stopping: Arc::default(),
        }
    }

    /// Copies until `stop` resolves; then lets the copies under way finish (for up to
    /// [`STOP_GRACE`]), so a stopped worker leaves no key leased for [`COPY_LEASE`].
    pub async fn run(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let round = self.round();
            tokio::pin!(round);
            let copied = tokio::select! {
                copied = &mut round => copied,
                () = &mut stop => {
                    self.stopping.store(true, Ordering::Relaxed);
                    let _ = tokio::time::timeout(STOP_GRACE, round).await;
                    return;
                }
            };
            let pause = match copied {
                Ok(0) => self.poll,
                Ok(_) => Duration::ZERO,
                Err(error) => {
                    tracing::warn!(mirror = %self.name, %error, "cannot read what the mirror is owed");
                    self.poll * 10
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = &mut stop => return,
            }
        }
    }

    /// One round: copies the keys due now. Returns how many it copied (or tried to): keys
    /// another copier holds do not count, so a round that only met those lets the loop pause.
    pub async fn round(&self) -> Result<usize, CacheError> {
        let due = self.cache.mirror_due(&self.name, BATCH).await?;
        let copied = futures::stream::iter(due)
            .map(|key| {
                let copier = self.clone();
                async move {
                    match copier.copy(key.clone()).await {
                        Ok(claimed) => claimed,
                        Err(error) => {
                            tracing::warn!(mirror = %copier.name, %key, %error, "mirror copy not recorded");
                            true
                        }
                    }
                }
            })
            .buffer_unordered(self.concurrency)
            .filter(|claimed| std::future::ready(*claimed))
            .count()
            .await;
        Ok(copied)
    }

    #[tracing::instrument(name = "mirror.copy", skip_all, fields(mirror = %self.name, %key))]
    async fn copy(&self, key: String) -> Result<bool, CacheError> {
        if self.stopping.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let Some(copy) = self
            .cache
            .claim_mirror_copy(&self.name, &key, COPY_LEASE)
            .await?
        else {
            return Ok(false);
        };
        match self.copy_object(&copy).await {
            Ok(()) => {
                self.cache.mirror_copied(&self.name, &copy).await?;
            }
            Err(failed) => {
                // Only the mirror's own refusal parks a key: the primary store failing to
                // give it is the primary's trouble, and passes.
                let permanent = matches!(failed, CopyFailed::Mirror(StoreError::Permanent(_)));
                let error = failed.to_string();
                let attempts = self
                    .cache
                    .mirror_copy_failed(&self.name, &copy, &error, self.retry, permanent)
                    .await?;
                if permanent {
                    tracing::error!(mirror = %self.name, %key, %error, "the mirror refused the key for good; dead-lettering it");
                } else {
                    tracing::warn!(mirror = %self.name, %key, %error, attempts, "copy to the mirror failed; retrying it later");
                }
            }
        }
        Ok(true)
    }

    /// Makes the mirror hold what the primary store holds for the key.
    async fn copy_object(&self, copy: &MirrorCopy) -> Result<(), CopyFailed> {
        // A key the store cannot hold is never in the primary store either.
        let Ok(key) = BlobKey::parse(copy.key.clone()) else {
            return Ok(());
        };
        match self.primary.open(&key).await.map_err(CopyFailed::Primary)? {
            Some(object) => {
                // A blob larger than the whole budget goes alone.
                let size = u32::try_from(object.length).unwrap_or(u32::MAX);
                let _held = self.bytes.acquire_many(size.min(self.max_bytes)).await;
                let blob = object.read_all().await.map_err(CopyFailed::Primary)?;
                self.mirror
                    .put(&key, &blob)
                    .await
                    .map_err(CopyFailed::Mirror)
            }
            None => {
                let version = copy.owed.parse().unwrap_or(0);
                let deleted = self.mirror.delete(&key, version).await;
                deleted.map_err(CopyFailed::Mirror)
            }
        }
    }
}

/// Which side of a copy failed.
#[derive(Debug, thiserror::Error)]
enum CopyFailed {
    #[error("reading the primary store: {0}")]
    Primary(StoreError),
    #[error("{0}")]
    Mirror(StoreError),
}
