//! The connection to Redis that the cache and the queue share: redis-rs's `ConnectionManager`
//! (multiplexed; it reconnects by itself after a connection breaks), plus what it leaves to
//! its caller: the command that found the connection broken fails. Here that command is sent
//! once more, at once, on the new connection, so a Redis restart or failover costs the
//! requests that arrive after Redis is back nothing (without this, each pooled connection
//! failed one request with "broken pipe").
//!
//! Resending is safe for every command blobproxy sends: reads; writes of a new version (sent
//! twice, a key gets one more version with the same bytes, and the client the later one);
//! lease, finish and dead-letter scripts (they check their token or version first); a job
//! queued twice (drains are idempotent).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// How long the one retry may wait for the new connection; past it the request fails with the
/// first error (Redis is down, not restarting).
pub const RETRY_WITHIN: Duration = Duration::from_secs(2);

/// A reconnecting connection that resends a command once when its connection broke.
#[derive(Clone)]
pub struct RedisLink(ConnectionManager);

/// Connects to Redis; the connection then reconnects by itself.
pub async fn connect(url: &str) -> anyhow::Result<RedisLink> {
    use anyhow::Context as _;
    let client =
        redis::Client::open(url).context("BLOBPROXY_REDIS_URL is not a valid Redis URL")?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(30)));
    let manager = client
        .get_connection_manager_with_config(config)
        .await
        .with_context(|| format!("cannot connect to Redis at BLOBPROXY_REDIS_URL={url}"))?;
    Ok(RedisLink(manager))
}

/// The connection broke (not: Redis answered an error, or a reply timed out).
fn broken(e: &RedisError) -> bool {
    (e.is_connection_dropped() || e.is_unrecoverable_error()) && !e.is_timeout()
}

async fn once_more<T>(
    again: impl Future<Output = RedisResult<T>>,
    first: RedisError,
) -> RedisResult<T> {
    tracing::debug!(error = %first, "Redis connection broke; sending once more on a new one");
    tokio::time::timeout(RETRY_WITHIN, again)
        .await
        .unwrap_or(Err(first))
}

impl ConnectionLike for RedisLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            match self.0.send_packed_command(cmd).await {
                Err(e) if broken(&e) => once_more(self.0.send_packed_command(cmd), e).await,
                result => result,
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            match self.0.send_packed_commands(pipeline, offset, count).await {
                Err(e) if broken(&e) => {
                    let again = self.0.send_packed_commands(pipeline, offset, count);
                    once_more(again, e).await
                }
                result => result,
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}
