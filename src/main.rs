//! The `blobproxy` binary: picks a run mode; everything else lives in the library.

use clap::{Parser, Subcommand};

use blobproxy::config::Settings;
use blobproxy::startup;

/// Stores binary blobs by key in S3 behind a Redis write-back cache. Every write is readable
/// at once from any replica; workers copy it to S3 in the background.
///
/// Every option can also be set through the environment variable shown with it.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a stateless HTTP replica (POST /put/, GET /get/<key>, /healthz, /readyz).
    Serve(Settings),
    /// Run a worker that drains blobs from Redis into S3.
    Worker(Settings),
    /// Run the HTTP server and a worker in one process (for local use).
    All(Settings),
    /// Write (and optionally read back and compare) random blobs against a running service.
    Loadgen(blobproxy::ops::loadgen::LoadgenArgs),
    /// Wait until every write is in S3, with a progress bar (before maintenance or scaling
    /// Redis down). Exits non-zero on timeout or when only dead letters are left.
    Flush {
        #[command(flatten)]
        settings: Settings,
        /// Give up after this many seconds (0: wait as long as it takes).
        #[arg(long, default_value_t = 0)]
        timeout_secs: u64,
    },
    /// Copy what a mirror store lacks from the primary store (a mirror added to a deployment
    /// that holds objects), resuming where a killed run stopped; or, with --verify, compare
    /// the two stores.
    Backfill {
        #[command(flatten)]
        settings: Settings,
        #[command(flatten)]
        args: blobproxy::ops::fill_mirror::BackfillArgs,
    },
    /// Queue every dead-lettered key for another drain (after fixing what made S3 refuse it).
    ReplayDeadLetters(Settings),
    /// Read one dead-lettered blob out, or move it under a valid key (keys written under an
    /// earlier version's rules: see the README's upgrade notes).
    DeadLetters {
        #[command(flatten)]
        settings: Settings,
        #[command(subcommand)]
        action: blobproxy::ops::DeadLetterAction,
    },
    /// Print a presigned URL: one key, GET or PUT, until a time; usable without the API key.
    Presign(blobproxy::ops::presign::PresignArgs),
    /// Exit 0 when the local replica answers GET /healthz with 200 (Docker HEALTHCHECK).
    Healthcheck(blobproxy::ops::healthcheck::HealthcheckArgs),
}

fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    // Before anything uses them (the worker's runtime below reads two).
    if let Command::Serve(settings)
    | Command::Worker(settings)
    | Command::All(settings)
    | Command::ReplayDeadLetters(settings)
    | Command::DeadLetters { settings, .. }
    | Command::Flush { settings, .. }
    | Command::Backfill { settings, .. } = &mut cli.command
    {
        settings.read_mirrors()?;
        settings.validate()?;
    }
    let (mut runtime, niced) = match &cli.command {
        Command::Worker(settings) => (
            worker_runtime(settings.worker.threads),
            // Before the runtime starts its threads: they inherit the nice value of this one.
            Some(blobproxy::jobs::worker::lower_priority(
                settings.worker.nice,
            )),
        ),
        _ => (tokio::runtime::Builder::new_multi_thread(), None),
    };
    runtime.enable_all().build()?.block_on(run(cli, niced))
}

/// A drain waits on Redis and S3 far more than it computes: on one thread it spends about a
/// fifth less CPU per object than on a thread per core (no cross-thread wake-ups; see
/// bench/RESULTS.md). More threads, or more worker processes, for a faster drain.
fn worker_runtime(threads: usize) -> tokio::runtime::Builder {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    }
}

fn trace_to(settings: &Settings, role: &'static str) -> Option<blobproxy::telemetry::TraceTo> {
    Some(blobproxy::telemetry::TraceTo {
        endpoint: settings.ops.otlp_endpoint.clone()?,
        sample_ratio: settings.ops.otlp_sample_ratio,
        role,
        instance: settings.replica(),
    })
}

async fn run(cli: Cli, niced: Option<std::io::Result<i32>>) -> anyhow::Result<()> {
    match &cli.command {
        Command::Healthcheck(args) => return blobproxy::ops::healthcheck::probe(args).await,
        Command::Loadgen(args) => return blobproxy::ops::loadgen::run(args.clone()).await,
        Command::Presign(args) => {
            let presigned = blobproxy::ops::presign::presign(args)?;
            println!("{}", presigned.url);
            eprintln!("expires at {}", presigned.expires_at);
            return Ok(());
        }
        _ => {}
    }
    use blobproxy::telemetry::LogTo;
    let log_to = match &cli.command {
        Command::DeadLetters { .. } | Command::Backfill { .. } => LogTo::Stderr,
        _ => LogTo::Stdout,
    };
    // The servers send traces when asked to; the operator commands never do.
    let traces = match &cli.command {
        Command::Serve(s) => trace_to(s, "serve"),
        Command::Worker(s) => trace_to(s, "worker"),
        Command::All(s) => trace_to(s, "all"),
        _ => None,
    };
    let _flush_telemetry_at_exit = blobproxy::telemetry::init(log_to, traces)?;
    match niced {
        Some(Ok(nice)) => {
            tracing::info!(nice, "draining at a lower CPU priority than the replicas")
        }
        Some(Err(error)) => tracing::warn!(%error, "cannot lower the worker's CPU priority"),
        None => {}
    }
    match cli.command {
        Command::Serve(s) => startup::serve(s).await,
        Command::Worker(s) => startup::worker(s).await,
        Command::All(s) => startup::all(s).await,
        Command::Flush {
            settings,
            timeout_secs,
        } => {
            let timeout = (timeout_secs > 0).then(|| std::time::Duration::from_secs(timeout_secs));
            blobproxy::ops::flush(settings, timeout).await
        }
        Command::Backfill { settings, args } => {
            blobproxy::ops::fill_mirror::backfill(settings, args).await
        }
        Command::ReplayDeadLetters(s) => {
            let mirrored = !s.mirror_stores.is_empty();
            let (queued, copies) = blobproxy::ops::replay_dead_letters(s).await?;
            println!("re-queued {queued} dead-lettered key(s)");
            if mirrored {
                println!("re-queued {copies} key(s) a mirror refused");
            }
            Ok(())
        }
        Command::DeadLetters { settings, action } => {
            let done = blobproxy::ops::settle_dead_letter(settings, action).await?;
            eprintln!("{done}");
            Ok(())
        }
        Command::Healthcheck(_) | Command::Loadgen(_) | Command::Presign(_) => {
            unreachable!("handled above")
        }
    }
}
