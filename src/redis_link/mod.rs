//! The connection to Redis that the cache and the queue share, and where keys live in it
//! ([`shards`]). One server: redis-rs's `ConnectionManager` (multiplexed; it reconnects by
//! itself after a connection breaks). A cluster (`BLOBPROXY_REDIS_CLUSTER_NODES`): redis-rs's
//! async cluster client, which routes each command to the master of its key's slot, follows
//! MOVED/ASK, and waits and retries on TRYAGAIN, CLUSTERDOWN and a master that is gone, for up
//! to [`CLUSTER_RETRY_BOUND`], while the cluster promotes a replica or moves slots. A master
//! watched by Redis Sentinel (`BLOBPROXY_REDIS_SENTINELS`): a `ConnectionManager` to the
//! master the sentinels name, moved to the new one after a failover ([`sentinel`]). Any of
//! them over TLS with `rediss://` ([`tls`]: a private CA, client certificates).
//!
//! What both leave to their caller: the command that found a connection broken fails. Here
//! that command is sent once more, at once, on the new connection, so a Redis restart or
//! failover costs the requests that arrive after Redis is back nothing (without this, each
//! pooled connection failed one request with "broken pipe").
//!
//! Resending is safe for every command blobproxy sends: reads; writes of a new version (sent
//! twice, a key gets one more version with the same bytes, and the client the later one);
//! lease, finish and dead-letter scripts (they check their token or version first); a job
//! queued twice (drains are idempotent).

mod script;
mod sentinel;
mod shards;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, RedisFuture, RedisResult, Value};

pub use crate::config::{RedisServers, RedisTarget, RedisTls, Sentinels};
pub use script::LuaScript;
pub(crate) use script::lua_script;
use sentinel::SentinelConn;
pub use shards::{CLUSTER_SHARDS, Keyspace, Shard};

/// How long the one retry may wait for the new connection; past it the request fails with the
/// first error (Redis is down, not restarting).
pub const RETRY_WITHIN: Duration = Duration::from_secs(2);

/// About how long a command waits, in a cluster, for a slot's new master (failover) or new
/// place (resharding) before it fails: 30 tries, 100-500 ms apart.
pub const CLUSTER_RETRY_BOUND: Duration = Duration::from_secs(10);
const CLUSTER_RETRIES: u32 = 30;

/// A reconnecting connection that resends a command once when its connection broke.
#[derive(Clone)]
pub struct RedisLink {
    conn: Conn,
    target: Arc<RedisTarget>,
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(SentinelConn),
}

/// Connects to Redis; the connection then reconnects by itself.
pub async fn connect(target: &RedisTarget) -> anyhow::Result<RedisLink> {
    use anyhow::Context as _;
    let certificates = tls::certificates(&target.tls)?;
    let conn = match &target.servers {
        RedisServers::Single(url) => {
            let client = tls::client(url, certificates.as_ref())
                .context("BLOBPROXY_REDIS_URL is not a valid Redis URL")?;
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(5)))
                .set_response_timeout(Some(Duration::from_secs(30)));
            let manager = client
                .get_connection_manager_with_config(config)
                .await
                .map_err(|e| tls::explained(e, &format!("BLOBPROXY_REDIS_URL={url}")))?;
            Conn::Single(manager)
        }
        RedisServers::Cluster(nodes) => {
            let mut builder =
                redis::cluster::ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .connection_timeout(Duration::from_secs(2))
                    .response_timeout(Duration::from_secs(30))
                    .retries(CLUSTER_RETRIES)
                    .min_retry_wait(100)
                    .max_retry_wait(500)
                    .retry_wait_formula(100, 2);
            if let Some(certificates) = certificates {
                builder = builder.certs(certificates);
            }
            let client = builder
                .build()
                .context("BLOBPROXY_REDIS_CLUSTER_NODES is not a list of valid Redis URLs")?;
            let conn = client.get_async_connection().await.map_err(|e| {
                let nodes = nodes.join(",");
                tls::explained(
                    e,
                    &format!("the Redis Cluster at BLOBPROXY_REDIS_CLUSTER_NODES={nodes}"),
                )
            })?;
            Conn::Cluster(conn)
        }
        RedisServers::Sentinel(sentinels) => {
            Conn::Sentinel(SentinelConn::connect(sentinels, certificates).await?)
        }
    };
    Ok(RedisLink {
        conn,
        target: Arc::new(target.clone()),
    })
}

impl RedisLink {
    /// How blob keys are laid out in this Redis.
    pub fn keyspace(&self) -> Keyspace {
        match self.conn {
            Conn::Single(_) | Conn::Sentinel(_) => Keyspace::Single,
            Conn::Cluster(_) => Keyspace::Cluster,
        }
    }

    /// A new connection to the same Redis (for a thread of its own).
    pub async fn open_another(&self) -> anyhow::Result<RedisLink> {
        connect(&self.target).await
    }

    /// Redis `WAIT`: how many replicas have every write this connection sent to `shard`'s
    /// master, waiting up to `timeout` for `replicas` of them. In a cluster it goes to the
    /// master of the shard's slot, over the same connection the writes took.
    pub async fn wait_for_replicas(
        &mut self,
        shard: &Shard,
        replicas: u32,
        timeout: Duration,
    ) -> RedisResult<u64> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(timeout.as_millis() as u64);
        match (&mut self.conn, shard.slot()) {
            (Conn::Cluster(conn), Some(slot)) => {
                let route = Route::new(slot, SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                let reply = conn.route_command(wait, routing).await?;
                Ok(u64::from_redis_value(reply)?)
            }
            _ => wait.query_async(self).await,
        }
    }

    /// Runs `cmd` on every master (the one server, for a single node): one reply each.
    pub async fn on_every_master<T: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<Vec<T>> {
        let Conn::Cluster(conn) = &mut self.conn else {
            return Ok(vec![cmd.query_async(self).await?]);
        };
        let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        let Value::Map(replies) = conn.route_command(cmd.clone(), routing).await? else {
            return Err(RedisError::from((
                redis::ErrorKind::Client,
                "a command sent to every master did not answer one reply per master",
            )));
        };
        replies
            .into_iter()
            .map(|(_node, reply)| Ok(T::from_redis_value(reply.extract_error()?)?))
            .collect()
    }
}

/// Redis refused a write because it reached `maxmemory` (`OOM`), directly or from inside a
/// script.
pub fn out_of_memory(e: &RedisError) -> bool {
    e.code() == Some("OOM") || e.to_string().contains("OOM command not allowed")
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

impl Conn {
    async fn send(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd).await,
            Conn::Cluster(c) => c.req_packed_command(cmd).await,
            Conn::Sentinel(c) => c.send(cmd).await,
        }
    }

    async fn send_all(
        &mut self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count).await,
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count).await,
            Conn::Sentinel(c) => c.send_all(pipeline, offset, count).await,
        }
    }
}

impl ConnectionLike for RedisLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            match self.conn.send(cmd).await {
                Err(e) if broken(&e) => once_more(self.conn.send(cmd), e).await,
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
            match self.conn.send_all(pipeline, offset, count).await {
                Err(e) if broken(&e) => {
                    once_more(self.conn.send_all(pipeline, offset, count), e).await
                }
                result => result,
            }
        })
    }

    fn get_db(&self) -> i64 {
        match &self.conn {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(c) => c.db(),
        }
    }
}
