//! A copy by the S3 client alone: lists the primary store and, for each object, GETs it and
//! PUTs it to another store, with the client and settings `blobproxy backfill` uses, but no
//! Redis (no lease, no cursor) and no HEAD of the mirror. The most a back-fill built on this
//! client could reach on the machine: `bench/bench.py mirror` runs it beside `backfill`.
//!
//!     cargo run --release --example bare_copy -- TO_ENDPOINT AT_ONCE
//!
//! Takes the primary store from `BLOBPROXY_S3_*` and `AWS_*` like the service; prints one JSON
//! line: objects copied, objects/s, and this process's CPU per object in ms.

#[path = "process_cpu.rs"]
mod process_cpu;

use std::time::Instant;

use blobproxy::config::Settings;
use blobproxy::domain::BlobKey;
use blobproxy::store::{BlobStore as _, S3Store};
use clap::Parser as _;
use futures::{StreamExt as _, TryStreamExt as _};
use process_cpu::cpu_seconds;

#[derive(clap::Parser)]
struct Args {
    to: String,
    /// Objects copied at once.
    at_once: usize,
    #[command(flatten)]
    settings: Settings,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let keys = args.settings.s3_keys()?.map(Into::into);
    let mut from = S3Store::connect(&args.settings.s3, keys.clone()).await?;
    from.open_bucket(&args.settings.s3).await?;
    let mut target = args.settings.s3.clone();
    target.endpoint = Some(args.to.clone());
    let mut to = S3Store::connect(&target, keys).await?;
    to.open_bucket(&target).await?;
    let (started, cpu) = (Instant::now(), cpu_seconds());
    let mut after: Option<String> = None;
    let mut copied = 0usize;
    loop {
        let page = from.list("", after.as_deref(), 500).await?;
        let Some((last, _)) = page.objects.last() else {
            break;
        };
        after = Some(last.clone());
        let (from, to) = (&from, &to);
        copied += futures::stream::iter(page.objects)
            .map(|(key, _)| async move {
                let key = BlobKey::parse(key)?;
                if let Some(object) = from.open(&key).await? {
                    to.put(&key, &object.read_all().await?).await?;
                }
                Ok::<_, anyhow::Error>(1)
            })
            .buffer_unordered(args.at_once)
            .try_collect::<Vec<usize>>()
            .await?
            .len();
        if !page.truncated {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "objects": copied,
            "objects_s": copied as f64 / seconds,
            "cpu_ms_per_object": 1e3 * (cpu_seconds() - cpu) / copied.max(1) as f64,
        })
    );
    Ok(())
}
