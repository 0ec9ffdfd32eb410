//! The worker process: an apalis monitor running one drain worker, plus housekeeping of the
//! job records apalis-redis leaves behind.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_core::backend::Vacuum as _;
use rand::Rng as _;

use super::drain::Drainer;
use super::queue::{DrainJob, JobQueue};

/// How often finished job records are removed (apalis-redis never deletes them itself).
const VACUUM_EVERY: Duration = Duration::from_secs(30);

/// How often the sweep looks for dirty keys that have no job, and how old (dirty since) a key
/// must be before it counts as orphaned.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
const ORPHAN_AGE: Duration = Duration::from_secs(30);

/// Restarts of a crashed worker before the process gives up and exits non-zero, so the
/// orchestrator restarts it instead of leaving a process that serves no jobs.
const MAX_RESTARTS: usize = 5;

async fn drain_job(job: DrainJob, drainer: Data<Arc<Drainer>>) -> Result<(), BoxDynError> {
    drainer.drain(&job).await.map_err(|e| {
        tracing::warn!(key = %job.key, error = %e, "drain job failed; apalis will retry it");
        e.into()
    })
}

/// A worker name no other live process uses: apalis-redis refuses a name seen in the last few
/// minutes, and in a container the PID is always 1.
fn unique_worker_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let suffix: u64 = rand::rng().random();
    format!("blobproxy-drain-{host}-{suffix:016x}")
}

/// Runs the drain worker until `shutdown` resolves; in-flight jobs get `grace` to finish, and
/// whatever is still running after that is delivered again to the next worker.
pub async fn run(
    drainer: Drainer,
    queue: JobQueue,
    concurrency: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> anyhow::Result<()> {
    let drainer = Arc::new(drainer);
    let vacuum = tokio::spawn(vacuum_finished_jobs(queue.clone()));
    let sweep = tokio::spawn(sweep_orphaned_keys(drainer.clone(), queue.clone()));
    let monitor = Monitor::new()
        .shutdown_timeout(grace)
        .should_restart(|ctx, error| {
            tracing::error!(worker = ctx.name(), %error, "drain worker stopped with an error");
            ctx.restarts() < MAX_RESTARTS
        })
        .register(move |_restarts| {
            WorkerBuilder::new(unique_worker_name())
                .backend(queue.storage())
                .data(drainer.clone())
                .concurrency(concurrency)
                .parallelize(tokio::spawn)
                .build(drain_job)
        });
    let result = monitor
        .run_with_signal(async move {
            shutdown.await;
            Ok(())
        })
        .await;
    vacuum.abort();
    sweep.abort();
    result.map_err(|e| anyhow::anyhow!("drain worker failed: {e}"))
}

async fn vacuum_finished_jobs(queue: JobQueue) {
    let mut storage = queue.storage();
    let mut tick = tokio::time::interval(VACUUM_EVERY);
    loop {
        tick.tick().await;
        match storage.vacuum().await {
            Ok(removed) => tracing::debug!(removed, "vacuumed finished drain jobs"),
            Err(e) => tracing::warn!(error = %e, "cannot vacuum finished drain jobs"),
        }
        let done_set = storage.get_config().done_jobs_set();
        let _: Result<i64, _> = redis::cmd("DEL")
            .arg(done_set)
            .query_async(storage.get_connection())
            .await;
    }
}

/// Re-queues dirty keys that nobody drains. Runs only while the queue is empty, so a long
/// backlog is not queued twice; the drain of a key already clean is a no-op anyway.
async fn sweep_orphaned_keys(drainer: Arc<Drainer>, queue: JobQueue) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        if !matches!(queue.pending().await, Ok(0)) {
            continue;
        }
        let orphans = match drainer.cache.orphaned_dirty_keys(ORPHAN_AGE, 1000).await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for orphaned dirty keys");
                continue;
            }
        };
        if !orphans.is_empty() {
            tracing::warn!(
                count = orphans.len(),
                "re-queueing dirty keys that had no job"
            );
        }
        for key in orphans {
            if let Err(e) = queue.push(DrainJob { key, version: 0 }).await {
                tracing::warn!(error = %e, "cannot re-queue an orphaned key");
                break;
            }
        }
    }
}
