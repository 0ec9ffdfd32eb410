//! The worker's S3 client alone: PUTs blobs from memory straight to the S3 server, with the
//! same client, settings and runtime as `blobproxy worker` (one thread), but no Redis and no
//! queue. `bench/drain_ab.py --client-alone` runs it beside the drain and direct S3 PUTs: it
//! is the most any drain built on this client could reach on the machine.
//!
//!     cargo run --release --example s3_client_alone -- COUNT SIZE CONCURRENCY
//!
//! Takes `BLOBPROXY_S3_*` and `AWS_*` from the environment like the worker; prints one JSON
//! line: objects/s and this process's CPU per object in ms.

use std::time::Instant;

use blobproxy::config::Settings;
use blobproxy::domain::{Blob, BlobKey};
use blobproxy::store::{BlobStore as _, S3Store};
use clap::Parser as _;
use futures::StreamExt as _;

#[derive(clap::Parser)]
struct Args {
    count: usize,
    size: usize,
    concurrency: usize,
    #[command(flatten)]
    settings: Settings,
}

fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF cannot fail.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = S3Store::connect(&args.settings, None).await?;
        store.ensure_bucket(false).await?;
        let blob = Blob {
            data: bytes::Bytes::from(vec![b'x'; args.size]),
            extension: String::new(),
            content_type: "application/octet-stream".into(),
            version: 1,
        };
        let (cpu, started) = (cpu_seconds(), Instant::now());
        let failures = futures::stream::iter(0..args.count)
            .map(|i| {
                let (store, blob) = (&store, &blob);
                async move {
                    let key = BlobKey::parse(format!("alone/{i}")).expect("a valid key");
                    store.put(&key, blob).await.is_err()
                }
            })
            .buffer_unordered(args.concurrency)
            .filter(|failed| std::future::ready(*failed))
            .count()
            .await;
        let seconds = started.elapsed().as_secs_f64();
        anyhow::ensure!(failures == 0, "{failures} PUTs failed");
        println!(
            "{{\"objects_s\": {:.1}, \"client_ms\": {:.4}}}",
            args.count as f64 / seconds,
            1000.0 * (cpu_seconds() - cpu) / args.count as f64
        );
        Ok(())
    })
}
