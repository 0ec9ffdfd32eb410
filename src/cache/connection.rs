//! The connections to Redis: one shared, reconnecting connection, plus one per HTTP worker
//! thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::CacheError;

/// The write-back cache. Cheap to clone: clones share one multiplexed connection, plus one
/// per HTTP worker thread once [`BlobCache::connect_this_thread`] ran there.
#[derive(Clone)]
pub struct BlobCache {
    shared: ConnectionManager,
    /// Tells this cache's per-thread connections from another's (tests run several).
    id: u64,
    url: Arc<str>,
}

thread_local! {
    /// Per-thread connections, by cache id. An HTTP worker thread that talks to Redis through
    /// a connection driven on another thread pays two thread hand-offs per command; perf
    /// showed the replica spending ~20% of its time in context switches on 1 KiB writes.
    static THREAD_CONNECTIONS: std::cell::RefCell<Vec<(u64, ConnectionManager)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Connects to Redis with a connection manager that reconnects by itself after a restart.
pub async fn connect(url: &str) -> anyhow::Result<ConnectionManager> {
    use anyhow::Context as _;
    let client =
        redis::Client::open(url).context("BLOBPROXY_REDIS_URL is not a valid Redis URL")?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(30)));
    client
        .get_connection_manager_with_config(config)
        .await
        .with_context(|| format!("cannot connect to Redis at BLOBPROXY_REDIS_URL={url}"))
}

impl BlobCache {
    pub fn new(conn: ConnectionManager, url: &str) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Self {
            shared: conn,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            url: url.into(),
        }
    }

    /// Opens a connection owned by the calling thread's runtime (an HTTP worker thread), used
    /// from then on by every call made on this thread. Until it is up, or if it fails, the
    /// shared connection serves.
    pub fn connect_this_thread(&self) {
        let (id, url) = (self.id, self.url.clone());
        actix_web::rt::spawn(async move {
            match connect(&url).await {
                Ok(conn) => THREAD_CONNECTIONS.with(|c| c.borrow_mut().push((id, conn))),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "no per-thread Redis connection; using the shared one")
                }
            }
        });
    }

    /// This thread's connection if it has one, else the shared one.
    pub(super) fn conn(&self) -> ConnectionManager {
        THREAD_CONNECTIONS
            .with(|c| {
                c.borrow()
                    .iter()
                    .find(|(id, _)| *id == self.id)
                    .map(|(_, conn)| conn.clone())
            })
            .unwrap_or_else(|| self.shared.clone())
    }

    /// Answers PING; used by readiness checks.
    pub async fn ping(&self) -> Result<(), CacheError> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(())
    }

    /// Refuses a Redis whose eviction policy could drop records not yet in S3 (they have no
    /// TTL, so only `allkeys-*` policies can evict them). Returns the policy, or `None` when
    /// CONFIG is not available (managed Redis): then the operator is trusted.
    pub async fn check_eviction_policy(&self) -> anyhow::Result<Option<String>> {
        let reply: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut self.conn())
            .await;
        let Ok(reply) = reply else {
            return Ok(None);
        };
        let Some(policy) = reply.get(1).cloned() else {
            return Ok(None);
        };
        if policy.starts_with("allkeys") {
            anyhow::bail!(
                "Redis maxmemory-policy is {policy}, which can evict blobs not yet stored in S3; \
                 set it to volatile-lru (evicts only blobs already in S3) or noeviction"
            );
        }
        Ok(Some(policy))
    }
}
