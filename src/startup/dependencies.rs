//! What the service depends on, connected: Redis (the cache and the queue), the primary
//! store and the mirror stores; and what is built on them (the service, the drain, the
//! mirrors' copiers).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::cache::{Backoff, BlobCache};
use crate::config::Settings;
use crate::jobs::{Backfill, BackfillPace, CopyPace, Drainer, MirrorCopier};
use crate::queue::JobQueue;
use crate::service::{BlobService, Limits};
use crate::store::{BlobStore, S3Store};

/// How long a key S3 failed for first waits for its next turn (then twice that, up to
/// `BLOBPROXY_WORKER_RETRY_MAX_SECS`).
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Connections to what the service depends on; cheap to clone.
#[derive(Clone)]
pub struct Dependencies {
    cache: BlobCache,
    /// The bucket keeps every version (`BLOBPROXY_S3_VERSIONING`).
    history: bool,
    store: Arc<dyn BlobStore>,
    /// The mirror stores, by name (`BLOBPROXY_MIRRORS`).
    mirrors: Vec<(String, Arc<dyn BlobStore>)>,
    /// The mirrors whose buckets keep versions.
    mirrors_with_history: Vec<String>,
    /// Public for the tests that push or count jobs themselves.
    pub queue: JobQueue,
}

impl Dependencies {
    /// Connects to Redis and S3 and makes sure the bucket exists. Retries for a while, because
    /// under Compose or Swarm the dependencies may start after us.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        Self::connect_with(settings, settings.s3_keys()?.map(Into::into)).await
    }

    /// Like [`Dependencies::connect`], with explicit S3 credentials instead of the AWS chain.
    pub async fn connect_with(
        settings: &Settings,
        credentials: Option<aws_sdk_s3::config::Credentials>,
    ) -> anyhow::Result<Self> {
        let conn = crate::redis_link::connect(&settings.redis_target()).await?;
        let names = settings.mirror_stores.iter().map(|m| m.name.clone());
        let cache = BlobCache::new(conn.clone())
            .confirmed_by(
                settings.redis.replica_acks,
                settings.redis.replica_ack_timeout,
            )
            .mirrored_to(names.collect());
        cache.check_eviction_policy().await?;
        let mut store = S3Store::connect(&settings.s3, credentials.clone()).await?;
        let history = store.open_bucket(&settings.s3).await?;
        let mut mirrors: Vec<(String, Arc<dyn BlobStore>)> = Vec::new();
        let mut mirrors_with_history = Vec::new();
        for mirror in &settings.mirror_stores {
            // A mirror's own keys, else the primary's (the chain, or what the caller passed).
            let keys = mirror
                .keys
                .clone()
                .map(Into::into)
                .or_else(|| credentials.clone());
            let mut copy = S3Store::connect(&mirror.s3, keys).await?;
            let versioned = copy
                .open_bucket(&mirror.s3)
                .await
                .with_context(|| format!("mirror {}", mirror.name))?;
            if versioned {
                mirrors_with_history.push(mirror.name.clone());
            }
            mirrors.push((mirror.name.clone(), Arc::new(copy)));
        }
        let poll = settings.worker.poll;
        Ok(Self {
            cache,
            history,
            store: Arc::new(store),
            mirrors,
            mirrors_with_history,
            queue: JobQueue::new(conn, poll),
        })
    }

    pub fn service(&self, settings: &Settings) -> BlobService {
        let limits = Limits {
            max_blob_bytes: settings.server.max_blob_bytes,
            write_through_bytes: settings.server.write_through_bytes,
            cache_ttl: settings.redis.cache_ttl,
            history: self.history,
        };
        BlobService::new(
            self.cache.clone(),
            self.store.clone(),
            self.queue.clone(),
            limits,
        )
        .reading_mirrors(self.mirrors.clone())
    }

    pub fn drainer(&self, settings: &Settings) -> Drainer {
        Drainer::new(
            self.cache.clone(),
            self.store.clone(),
            self.queue.clone(),
            settings.redis.cache_ttl,
            Backoff {
                first: FIRST_RETRY,
                cap: settings.worker.retry_max,
            },
            settings.worker.max_bytes,
            settings.worker.concurrency,
        )
    }
}

impl Dependencies {
    /// A copier per mirror store, for a worker to run.
    pub fn mirror_copiers(&self, settings: &Settings) -> Vec<MirrorCopier> {
        let retry = Backoff {
            first: FIRST_RETRY,
            cap: settings.worker.retry_max,
        };
        self.mirrors
            .iter()
            .map(|(name, mirror)| {
                MirrorCopier::new(
                    name.clone(),
                    self.cache.clone(),
                    self.store.clone(),
                    mirror.clone(),
                    CopyPace {
                        concurrency: MIRROR_COPIES,
                        max_bytes: settings.worker.max_bytes,
                        retry,
                        poll: settings.worker.poll,
                    },
                )
            })
            .collect()
    }
}

impl Dependencies {
    /// The back-fill (and `verify`) of the mirror `name`.
    /// `rate`: objects written per second at most (0: no limit).
    pub fn backfill(&self, name: &str, concurrency: usize, rate: f64) -> anyhow::Result<Backfill> {
        let pace = BackfillPace {
            concurrency,
            per_second: (rate > 0.0).then_some(rate),
        };
        let Some((_, mirror)) = self.mirrors.iter().find(|(n, _)| n == name) else {
            let known: Vec<&str> = self.mirrors.iter().map(|(n, _)| n.as_str()).collect();
            anyhow::bail!(
                "no mirror named {name:?} (BLOBPROXY_MIRRORS names: {})",
                known.join(", ")
            );
        };
        let histories = self.history && self.mirrors_with_history.iter().any(|n| n == name);
        Ok(Backfill::new(
            name.to_owned(),
            self.cache.clone(),
            (self.store.clone(), mirror.clone()),
            histories,
            pace,
        ))
    }
}

/// Copies to one mirror at once, per worker process.
const MIRROR_COPIES: usize = 32;
