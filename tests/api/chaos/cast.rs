//! The topology a run plays on, as processes on loopback: nginx (the project's config, with
//! dnsmasq for Docker's DNS), 3 replicas and 2 workers (`blobproxy` processes), Redis (a
//! single server with AOF, each process reaching it through its own [`TcpCut`] so one can be
//! cut off; or a 3-master cluster with a replica each and `BLOBPROXY_REDIS_REPLICA_ACKS=1`),
//! and s3s-fs behind the fault proxy, with another s3s-fs as a mirror store (reached
//! directly: the faults of S3 are the primary's). And how each fault of the nemesis is done
//! and undone.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::nemesis::{Fault, Member, Side};
use super::tcp_cut::TcpCut;
use crate::cluster::Cluster;
use crate::helpers::*;
use crate::s3_proxy::S3Proxy;
use crate::topology::{Dns, Nginx, nginx_in_front};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    Single,
    Cluster,
}

enum Redis {
    Single(RedisServer, S3Server),
    Cluster(Box<Cluster>),
}

/// A `blobproxy` process of the cast, restartable.
struct Player {
    args: &'static str,
    name: String,
    env: Vec<(&'static str, String)>,
    /// Its own way to Redis (single Redis only).
    cut: Option<TcpCut>,
    /// Its own way to S3 (to the fault proxy).
    s3_cut: TcpCut,
    running: Option<BlobproxyProcess>,
}

pub struct Cast {
    replica_acks: u32,
    dir: tempfile::TempDir,
    redis: Redis,
    proxy: S3Proxy,
    /// Its endpoint: the server itself is the run's, so it can go down on its own schedule.
    mirror_endpoint: String,
    replicas: Vec<Player>,
    workers: Vec<Player>,
    dns: Dns,
    _nginx: Option<Nginx>,
    pub nginx_url: String,
    pub replica_urls: Vec<String>,
    /// Which cluster node a Redis fault took down, to bring it back.
    downed_node: Option<u16>,
}

const REPLICA_IPS: [&str; 3] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];

impl Cast {
    /// `replica_acks`: `BLOBPROXY_REDIS_REPLICA_ACKS` of a cluster; `mirror`: the mirror store.
    pub async fn start(topology: Topology, replica_acks: u32, mirror: &S3Server) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let redis = match topology {
            Topology::Single => {
                let (redis, s3) = tokio::join!(
                    RedisServer::start_with(&["--appendonly", "yes"]),
                    S3Server::start_kind(S3Kind::S3sFs)
                );
                Redis::Single(redis, s3)
            }
            Topology::Cluster => Redis::Cluster(Box::new(Cluster::start().await)),
        };
        let s3_port = match &redis {
            Redis::Single(_, s3) => s3.port,
            Redis::Cluster(cluster) => cluster.s3().port,
        };
        let proxy = S3Proxy::start(s3_port).await;
        let web_port = free_port();
        let mut cast = Cast {
            replica_acks,
            redis,
            proxy,
            mirror_endpoint: mirror.endpoint(),
            replicas: Vec::new(),
            workers: Vec::new(),
            dns: Dns::start(dir.path(), &REPLICA_IPS),
            _nginx: None,
            nginx_url: String::new(),
            replica_urls: REPLICA_IPS
                .iter()
                .map(|ip| format!("http://{ip}:{web_port}"))
                .collect(),
            downed_node: None,
            dir,
        };
        for (i, ip) in REPLICA_IPS.iter().enumerate() {
            let env = vec![
                ("BLOBPROXY_BIND", format!("{ip}:{web_port}")),
                ("BLOBPROXY_REPLICA_NAME", format!("web-{i}")),
            ];
            let player = cast.player("serve", format!("web-{i}"), env).await;
            cast.replicas.push(player);
        }
        for i in 0..2 {
            let player = cast.player("worker", format!("worker-{i}"), vec![]).await;
            cast.workers.push(player);
        }
        for ip in REPLICA_IPS {
            wait_for_addr(&format!("{ip}:{web_port}"), "replica").await;
        }
        let (nginx, url) = nginx_in_front(cast.dir.path(), &cast.dns, web_port).await;
        (cast._nginx, cast.nginx_url) = (Some(nginx), url);
        let http = reqwest::Client::new();
        eventually(
            Duration::from_secs(30),
            "nginx finding the replicas",
            || async {
                let answer = http.get(format!("{}/readyz", cast.nginx_url)).send().await;
                answer.ok().filter(|a| a.status() == 200).map(|_| ())
            },
        )
        .await;
        cast
    }

    /// A process of the cast, started.
    async fn player(
        &self,
        args: &'static str,
        name: String,
        mut env: Vec<(&'static str, String)>,
    ) -> Player {
        let cut = match &self.redis {
            Redis::Single(redis, _) => Some(TcpCut::start(redis.port).await),
            Redis::Cluster(cluster) => {
                env.push((
                    "BLOBPROXY_REDIS_CLUSTER_NODES",
                    cluster.node_urls().join(","),
                ));
                env.push((
                    "BLOBPROXY_REDIS_REPLICA_ACKS",
                    self.replica_acks.to_string(),
                ));
                None
            }
        };
        let mut player = Player {
            args,
            name,
            env,
            cut,
            s3_cut: TcpCut::start(self.proxy.port).await,
            running: None,
        };
        player.running = Some(self.launch(&player));
        player
    }

    /// Starts `player`'s process, logging to `<name>.log` (appended across restarts).
    fn launch(&self, player: &Player) -> BlobproxyProcess {
        let log = self.dir.path().join(format!("{}.log", player.name));
        let mut command = self.command(player.cut.as_ref());
        let s3 = format!("http://127.0.0.1:{}", player.s3_cut.port);
        command.env("BLOBPROXY_S3_ENDPOINT", s3);
        BlobproxyProcess::spawn_from(command, &[player.args], &player.env, &log)
    }

    /// `blobproxy` pointed at Redis (through `cut`, if given) and at S3 through the proxy.
    fn command(&self, cut: Option<&TcpCut>) -> Command {
        let redis_url = match (&self.redis, cut) {
            (_, Some(cut)) => format!("redis://127.0.0.1:{}", cut.port),
            (Redis::Single(redis, _), None) => redis.url(),
            (Redis::Cluster(cluster), None) => cluster.node_urls()[0].clone(),
        };
        let mut command = blobproxy_command_for(&redis_url, &self.proxy.endpoint());
        command
            .env("BLOBPROXY_MIRRORS", "dr")
            .env("BLOBPROXY_MIRROR_DR_S3_ENDPOINT", &self.mirror_endpoint)
            .env("BLOBPROXY_MIRROR_DR_S3_BUCKET", BUCKET);
        if let Redis::Cluster(cluster) = &self.redis {
            command.env(
                "BLOBPROXY_REDIS_CLUSTER_NODES",
                cluster.node_urls().join(","),
            );
        }
        command
    }

    /// The S3 server itself, not through the proxy: what really landed.
    pub fn s3(&self) -> &S3Server {
        match &self.redis {
            Redis::Single(_, s3) => s3,
            Redis::Cluster(cluster) => cluster.s3(),
        }
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Leaves the processes' logs (and the stores' files) on disk after the run.
    pub fn keep_logs(&mut self) {
        self.dir.disable_cleanup(true);
    }

    fn member(&mut self, member: Member) -> &mut Player {
        match member {
            Member::Replica(i) => &mut self.replicas[i],
            Member::Worker(i) => &mut self.workers[i],
        }
    }

    /// The proxy between `member` and `side` (to Redis: single Redis only).
    fn cut_of(&self, member: Member, side: Side) -> &TcpCut {
        let player = self.member_ref(member);
        match side {
            Side::Redis => player.cut.as_ref().expect("single Redis"),
            Side::S3 => &player.s3_cut,
        }
    }

    fn member_ref(&self, member: Member) -> &Player {
        match member {
            Member::Replica(i) => &self.replicas[i],
            Member::Worker(i) => &self.workers[i],
        }
    }

    /// The pid of the Redis process a fault hits: the server, or a master of the cluster
    /// (`pick` chooses which).
    async fn redis_target(&mut self, pick: usize) -> &mut RedisServer {
        match &mut self.redis {
            Redis::Single(redis, _) => redis,
            Redis::Cluster(cluster) => {
                let masters = cluster.master_ports().await;
                let port = masters[pick % masters.len()];
                self.downed_node = Some(port);
                cluster.node(port)
            }
        }
    }

    /// Starts `fault`; `pick` chooses among masters where that applies.
    pub async fn inject(&mut self, fault: &Fault, pick: usize) {
        match fault {
            Fault::Kill(member) => self.member(*member).running = None,
            Fault::Pause(member) => signal(self.member(*member), "STOP"),
            Fault::KillRedis => self.redis_target(pick).await.stop(),
            Fault::PauseRedis => {
                let pid = self.redis_target(pick).await.pid();
                kill(pid, "STOP");
            }
            Fault::S3Down => self.s3_mut().stop(),
            Fault::S3Slow(delay) => self.proxy.set_delay(*delay),
            Fault::S3Errors(status, code) => self.proxy.fail_every_request(*status, code),
            Fault::S3SlowDown {
                writes,
                retry_after,
            } => self.proxy.slow_down(*writes, *retry_after),
            Fault::Partition(member, side) => self.cut_of(*member, *side).cut(),
            Fault::RedisFull => self.set_maxmemory(true).await,
        }
    }

    /// Ends `fault`.
    pub async fn heal(&mut self, fault: &Fault) {
        match fault {
            Fault::Kill(member) => {
                let process = self.launch(self.member_ref(*member));
                self.member(*member).running = Some(process);
            }
            Fault::Pause(member) => signal(self.member(*member), "CONT"),
            Fault::KillRedis => self.downed_redis().restart().await,
            Fault::PauseRedis => kill(self.downed_redis().pid(), "CONT"),
            Fault::S3Down => self.s3_mut().restart().await,
            Fault::S3Slow(_) => self.proxy.set_delay(Duration::ZERO),
            Fault::S3Errors(..) => self.proxy.allow_all(),
            Fault::S3SlowDown { .. } => self.proxy.slow_down(0, 0),
            Fault::Partition(member, side) => self.cut_of(*member, *side).heal(),
            Fault::RedisFull => self.set_maxmemory(false).await,
        }
    }

    fn downed_redis(&mut self) -> &mut RedisServer {
        match &mut self.redis {
            Redis::Single(redis, _) => redis,
            Redis::Cluster(cluster) => cluster.node(self.downed_node.take().unwrap()),
        }
    }

    fn s3_mut(&mut self) -> &mut S3Server {
        match &mut self.redis {
            Redis::Single(_, s3) => s3,
            Redis::Cluster(cluster) => cluster.s3_mut(),
        }
    }

    /// Every Redis node's `maxmemory`: what it holds now (so writes are refused), or none.
    async fn set_maxmemory(&self, full: bool) {
        let urls = match &self.redis {
            Redis::Single(redis, _) => vec![redis.url()],
            Redis::Cluster(cluster) => cluster.node_urls(),
        };
        for url in urls {
            let Ok(mut conn) = redis::Client::open(url)
                .unwrap()
                .get_multiplexed_async_connection()
                .await
            else {
                continue;
            };
            let limit = if full {
                let info: String = redis::cmd("INFO")
                    .arg("memory")
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                let used: u64 = info
                    .lines()
                    .find_map(|l| l.strip_prefix("used_memory:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                used + 64 * 1024
            } else {
                0
            };
            let _: redis::RedisResult<()> = redis::cmd("CONFIG")
                .arg("SET")
                .arg("maxmemory")
                .arg(limit)
                .query_async(&mut conn)
                .await;
        }
    }

    /// `blobproxy flush` against the cast; true when it exits 0 within `timeout`.
    pub async fn flush(&self, timeout: Duration) -> (bool, String) {
        let out = self
            .command(None)
            .args(["flush", "--timeout-secs", &timeout.as_secs().to_string()])
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said)
    }
}

fn signal(player: &Player, signal: &str) {
    if let Some(process) = &player.running {
        kill(Some(process.pid()), signal);
    }
}

fn kill(pid: Option<u32>, signal: &str) {
    if let Some(pid) = pid {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status();
    }
}
