//! The worker's S3 client alone: PUTs blobs from memory straight to the S3 server, with the
//! same client, settings and runtime as `blobproxy worker` (one thread), but no Redis and no
//! queue. `bench/drain_ab.py --client-alone` runs it beside the drain and direct S3 PUTs: it
//! is the most any drain built on this client could reach on the machine.
//!
//! Uploads in flight are CONCURRENCY, bounded like the worker's by its byte budget
//! (`BLOBPROXY_WORKER_MAX_BYTES`): a drain with the same settings can hold no more, so a
//! higher bound here would measure another configuration (`--ignore-byte-budget` does).
//!
//! `--from-redis` makes it the least a drain out of Redis can be (a bare drain): the blobs are
//! SET in Redis (`BLOBPROXY_REDIS_URL`) before the clock starts, and each is read back with
//! one GET before its PUT; no lease, index, queue or script. `redis-rs` reads through the
//! crate the service uses (its parser copies each reply out of a growing buffer); `raw` reads
//! the reply straight into the blob's buffer over a connection per upload, the fewest copies
//! any client could make.
//!
//!     cargo run --release --example s3_client_alone -- COUNT SIZE CONCURRENCY [--from-redis raw]
//!
//! Takes `BLOBPROXY_*` and `AWS_*` from the environment like the worker; prints one JSON line:
//! objects/s and this process's CPU per object in ms.

#[path = "process_cpu.rs"]
mod process_cpu;

use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context as _;
use blobproxy::config::Settings;
use blobproxy::domain::{Blob, BlobKey};
use blobproxy::store::{BlobStore as _, S3Store};
use bytes::Bytes;
use clap::Parser as _;
use futures::StreamExt as _;
use process_cpu::cpu_seconds;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

#[derive(clap::Parser)]
struct Args {
    count: usize,
    size: usize,
    concurrency: usize,
    /// Keep CONCURRENCY uploads in flight whatever their bytes.
    #[arg(long)]
    ignore_byte_budget: bool,
    /// Read each blob out of Redis before its PUT (see the module docs).
    #[arg(long, value_enum)]
    from_redis: Option<RedisRead>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RedisRead {
    RedisRs,
    Raw,
}

/// Where each upload's bytes come from.
enum Source {
    Memory(Bytes),
    RedisRs(redis::aio::MultiplexedConnection),
    /// Idle connections, one per upload in flight at most.
    Raw(String, Mutex<Vec<BufReader<TcpStream>>>),
}

impl Source {
    async fn blob(&self, i: usize) -> anyhow::Result<Bytes> {
        match self {
            Source::Memory(data) => Ok(data.clone()),
            Source::RedisRs(conn) => {
                let data: Vec<u8> = redis::AsyncCommands::get(&mut conn.clone(), key(i)).await?;
                Ok(Bytes::from(data))
            }
            Source::Raw(address, idle) => {
                let pooled = idle.lock().expect("never poisoned").pop();
                let mut conn = match pooled {
                    Some(conn) => conn,
                    None => BufReader::new(TcpStream::connect(address).await?),
                };
                let data = raw_get(&mut conn, &key(i)).await?;
                idle.lock().expect("never poisoned").push(conn);
                Ok(data)
            }
        }
    }
}

fn key(i: usize) -> String {
    format!("bare/{i}")
}

/// One GET in RESP: the reply's bytes land in the blob's own buffer (no parser in between).
async fn raw_get(conn: &mut BufReader<TcpStream>, key: &str) -> anyhow::Result<Bytes> {
    let command = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
    conn.get_mut().write_all(command.as_bytes()).await?;
    let mut header = String::new();
    conn.read_line(&mut header).await?;
    let length: usize = header
        .strip_prefix('$')
        .and_then(|h| h.trim_end().parse().ok())
        .with_context(|| format!("GET {key} answered {header:?}"))?;
    let mut data = vec![0; length + 2]; // the bulk string and its CRLF
    conn.read_exact(&mut data).await?;
    data.truncate(length);
    Ok(Bytes::from(data))
}

/// Redis's CPU seconds so far (user + system, from `INFO cpu`).
async fn redis_cpu_seconds(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<f64> {
    let info: String = redis::cmd("INFO").arg("cpu").query_async(conn).await?;
    Ok(info
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| matches!(*name, "used_cpu_sys" | "used_cpu_user"))
        .filter_map(|(_, value)| value.trim().parse::<f64>().ok())
        .sum())
}

/// SETs COUNT blobs of SIZE bytes (each a little different) for a bare drain to read.
async fn preload(conn: &mut redis::aio::MultiplexedConnection, args: &Args) -> anyhow::Result<()> {
    for first in (0..args.count).step_by(16) {
        let mut pipe = redis::pipe();
        for i in first..(first + 16).min(args.count) {
            let mut data = vec![b'x'; args.size];
            data[..8.min(args.size)].copy_from_slice(&i.to_le_bytes()[..8.min(args.size)]);
            pipe.set(key(i), data).ignore();
        }
        pipe.query_async::<()>(conn).await?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let in_flight = if args.ignore_byte_budget {
        args.concurrency
    } else {
        // The worker's bound: as many blobs as fit in its byte budget (at least one).
        args.concurrency
            .min(args.settings.worker.max_bytes / args.size.max(1))
            .max(1)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = S3Store::connect(&args.settings.s3, None).await?;
        store.ensure_bucket(false).await?;
        // A connection to read Redis's CPU counters on, with their value before the clock.
        let mut redis_meter = None;
        let source = match args.from_redis {
            None => Source::Memory(Bytes::from(vec![b'x'; args.size])),
            Some(read) => {
                let client = redis::Client::open(args.settings.redis.url.as_str())?;
                let mut conn = client.get_multiplexed_async_connection().await?;
                preload(&mut conn, &args).await?;
                let before = redis_cpu_seconds(&mut conn).await?;
                redis_meter = Some((conn.clone(), before));
                match read {
                    RedisRead::RedisRs => Source::RedisRs(conn),
                    RedisRead::Raw => {
                        let info = client.get_connection_info();
                        let address = match info.addr() {
                            redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
                            _ => anyhow::bail!("--from-redis raw needs a redis:// URL"),
                        };
                        Source::Raw(address, Mutex::new(Vec::new()))
                    }
                }
            }
        };
        let (cpu, started) = (cpu_seconds(), Instant::now());
        let failures = futures::stream::iter(0..args.count)
            .map(|i| {
                let (store, source) = (&store, &source);
                async move {
                    let key = BlobKey::parse(format!("alone/{i}")).expect("a valid key");
                    let blob = Blob {
                        data: source.blob(i).await?,
                        extension: String::new(),
                        content_type: "application/octet-stream".into(),
                        version: 1,
                    };
                    store.put(&key, &blob).await?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(in_flight)
            .filter(|result| std::future::ready(result.is_err()))
            .count()
            .await;
        let seconds = started.elapsed().as_secs_f64();
        let client_ms = 1000.0 * (cpu_seconds() - cpu) / args.count as f64;
        anyhow::ensure!(failures == 0, "{failures} uploads failed");
        let redis_ms = match &mut redis_meter {
            Some((conn, before)) => {
                let spent = redis_cpu_seconds(conn).await? - *before;
                format!(", \"redis_ms\": {:.4}", 1000.0 * spent / args.count as f64)
            }
            None => String::new(),
        };
        println!(
            "{{\"objects_s\": {:.1}, \"client_ms\": {client_ms:.4}, \"in_flight\": {in_flight}{redis_ms}}}",
            args.count as f64 / seconds,
        );
        Ok(())
    })
}
