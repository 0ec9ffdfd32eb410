//! The connection the drain queues use. On a Redis Cluster, apalis-redis 1.0.0's
//! `register_worker.lua` cannot run: besides the queue's own keys (all in the shard's slot) it
//! writes one global key, `core:apalis:queues:list` (a list of queues for apalis's
//! dashboards), which lives in another slot, mostly on another master, and Redis refuses the
//! whole script ("non local key"), so the worker of every shard but a few never starts. This
//! connection runs `register_worker.lua` (the same script without that line) in its place;
//! every other command passes through. Single-node Redis gets apalis's script unchanged.

use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{Arg, Cmd, Pipeline, RedisFuture, Script, Value};

use crate::redis_link::{Keyspace, RedisLink};

/// SHA-1 of apalis-redis 1.0.0's `lua/register_worker.lua` (the version is pinned).
const APALIS_REGISTER_WORKER_SHA: &[u8] = b"0d5fbce91e1dcff1121ece41f7169da3c0e39194";

static REGISTER_WORKER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("register_worker.lua")));

#[derive(Clone)]
pub struct QueueConn(RedisLink);

impl QueueConn {
    pub fn new(link: RedisLink) -> Self {
        Self(link)
    }
}

/// `EVALSHA <apalis's register_worker> numkeys keys... args...`, as our script's invocation.
fn register_worker_in_cluster(cmd: &Cmd) -> Option<redis::ScriptInvocation<'static>> {
    let mut args = cmd.args_iter().map(|arg| match arg {
        Arg::Simple(bytes) => bytes,
        _ => &[][..],
    });
    if !args.next()?.eq_ignore_ascii_case(b"EVALSHA") || args.next()? != APALIS_REGISTER_WORKER_SHA
    {
        return None;
    }
    let keys: usize = std::str::from_utf8(args.next()?).ok()?.parse().ok()?;
    let mut invocation = REGISTER_WORKER.prepare_invoke();
    for (at, arg) in args.enumerate() {
        if at < keys {
            invocation.key(arg);
        } else {
            invocation.arg(arg);
        }
    }
    Some(invocation)
}

impl ConnectionLike for QueueConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        if self.0.keyspace() == Keyspace::Cluster
            && let Some(invocation) = register_worker_in_cluster(cmd)
        {
            return Box::pin(async move { invocation.invoke_async(&mut self.0).await });
        }
        self.0.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.0.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apalis_register_worker_call_is_recognised_with_its_keys_and_args() {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(std::str::from_utf8(APALIS_REGISTER_WORKER_SHA).unwrap())
            .arg(2)
            .arg("q:workers")
            .arg("q:workers:metadata:w")
            .arg(1)
            .arg("w");
        assert!(register_worker_in_cluster(&cmd).is_some());
        let mut other = redis::cmd("EVALSHA");
        other.arg("0000").arg(0);
        assert!(register_worker_in_cluster(&other).is_none());
    }
}
