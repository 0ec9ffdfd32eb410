//! The connections to Redis: one shared connection, plus one per HTTP worker thread (each a
//! [`RedisLink`]: it reconnects, and resends a command once when its connection broke).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::rc::Rc;

use super::group_commit::Batcher;
use super::{CacheError, Names};
use crate::redis_link::{Keyspace, RedisLink};

/// The write-back cache. Cheap to clone: clones share one multiplexed connection, plus one
/// per HTTP worker thread once [`BlobCache::connect_this_thread`] ran there.
#[derive(Clone)]
pub struct BlobCache {
    shared: RedisLink,
    /// Replicas that must confirm each write, and how long to wait for them (Redis `WAIT`).
    pub(super) replica_acks: Option<(u32, Duration)>,
    /// Tells this cache's per-thread connections from another's (tests run several).
    id: u64,
    keyspace: Keyspace,
    /// Every shard's key names, in shard order.
    names: Arc<Vec<Names>>,
}

thread_local! {
    /// Per-thread connections, by cache id. An HTTP worker thread that talks to Redis through
    /// a connection driven on another thread pays two thread hand-offs per command; perf
    /// showed the replica spending ~20% of its time in context switches on 1 KiB writes.
    static THREAD_CONNECTIONS: std::cell::RefCell<Vec<(u64, RedisLink, Rc<Batcher>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl BlobCache {
    pub fn new(conn: RedisLink) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let keyspace = conn.keyspace();
        Self {
            shared: conn,
            replica_acks: None,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            keyspace,
            names: Arc::new(Names::all(keyspace)),
        }
    }

    /// The key names of `key`'s shard.
    pub(super) fn names(&self, key: &str) -> &Names {
        &self.names[self.keyspace.shard_of(key).index()]
    }

    /// The key names of every shard.
    pub(super) fn every_shard(&self) -> &[Names] {
        &self.names
    }

    /// Makes every write wait until `replicas` replicas confirm it, for up to `timeout`.
    pub fn confirmed_by(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replica_acks = (replicas > 0).then_some((replicas, timeout));
        self
    }

    /// Opens a connection owned by the calling thread's runtime (an HTTP worker thread), used
    /// from then on by every call made on this thread. Until it is up, or if it fails, the
    /// shared connection serves. Call it inside the thread's `LocalSet` (actix-web runs each
    /// worker thread in one; `tokio::task::spawn_local` is what `actix_web::rt::spawn` is).
    pub fn connect_this_thread(&self) {
        let (id, shared) = (self.id, self.shared.clone());
        tokio::task::spawn_local(async move {
            match shared.open_another().await {
                Ok(conn) => THREAD_CONNECTIONS.with(|c| {
                    let batcher = Batcher::new(conn.clone());
                    c.borrow_mut().push((id, conn, batcher))
                }),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "no per-thread Redis connection; using the shared one")
                }
            }
        });
    }

    /// This thread's connection if it has one, else the shared one.
    pub(super) fn conn(&self) -> RedisLink {
        THREAD_CONNECTIONS
            .with(|c| {
                c.borrow()
                    .iter()
                    .find(|(id, ..)| *id == self.id)
                    .map(|(_, conn, _)| conn.clone())
            })
            .unwrap_or_else(|| self.shared.clone())
    }

    /// This thread's group commit, when it is an HTTP thread with its own connection.
    pub(super) fn batcher(&self) -> Option<Rc<Batcher>> {
        THREAD_CONNECTIONS.with(|c| {
            c.borrow()
                .iter()
                .find(|(id, ..)| *id == self.id)
                .map(|(.., batcher)| batcher.clone())
        })
    }

    /// Every master answers PING; used by readiness checks.
    pub async fn ping(&self) -> Result<(), CacheError> {
        let _: Vec<String> = self.conn().on_every_master(&redis::cmd("PING")).await?;
        Ok(())
    }

    /// Refuses a Redis whose eviction policy could drop records not yet in S3 (they have no
    /// TTL, so only `allkeys-*` policies can evict them). When CONFIG is not available (managed
    /// Redis), the operator is trusted, with a warning.
    pub async fn check_eviction_policy(&self) -> anyhow::Result<()> {
        let mut config_get = redis::cmd("CONFIG");
        config_get.arg("GET").arg("maxmemory-policy");
        let reply: redis::RedisResult<Vec<Vec<String>>> =
            self.conn().on_every_master(&config_get).await;
        // The first master whose policy could evict unsaved blobs, else any (all alike).
        let policies: Vec<String> = reply
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.get(1).cloned())
            .collect();
        let policy = policies
            .iter()
            .find(|p| p.starts_with("allkeys"))
            .or(policies.first())
            .cloned();
        let Some(policy) = policy else {
            tracing::warn!(
                "cannot read Redis maxmemory-policy (CONFIG disabled); make sure it is noeviction or volatile-*"
            );
            return Ok(());
        };
        if policy.starts_with("allkeys") {
            anyhow::bail!(
                "Redis maxmemory-policy is {policy}, which can evict blobs not yet stored in S3; \
                 set it to volatile-lru (evicts only blobs already in S3) or noeviction"
            );
        }
        tracing::info!(%policy, "Redis eviction policy keeps unsaved blobs");
        Ok(())
    }
}
