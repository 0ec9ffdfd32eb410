//! The worker process: the apalis drain worker, kept alive across Redis outages, plus two
//! background loops: the sweep (drains dirty keys nobody is draining) and the vacuum (removes
//! finished job records, which apalis-redis never deletes itself).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use apalis::prelude::*;
use futures::StreamExt as _;
use rand::Rng as _;

use super::drain::{Drained, Drainer};
use super::mirror::MirrorCopier;
use crate::cache::QueueHealth;
use crate::queue::{DrainJob, JobQueue};
use crate::shutdown::Shutdown;

/// How often finished job records are removed.
const VACUUM_EVERY: Duration = Duration::from_secs(30);

/// How often the sweep looks for orphaned dirty keys, and how long (dirty since) a key must
/// wait before the sweep drains it itself.
const SWEEP_EVERY: Duration = Duration::from_secs(2);
const ORPHAN_AGE: Duration = Duration::from_secs(10);

/// Shortest time jobs may wait with the worker idle before it is restarted (see [`stalled`]).
const MIN_STALL: Duration = Duration::from_secs(10);

/// What this worker's jobs are doing, for the stall watchdog and the sweep.
#[derive(Default)]
pub struct Activity {
    running: AtomicUsize,
    started: AtomicU64,
    /// The job queue failed (the apalis worker stopped with an error) and has delivered no
    /// job since: the sweep then drains every dirty key at once instead of waiting for
    /// `ORPHAN_AGE`, since no job is coming for them (a full Redis refuses even the queue's
    /// own bookkeeping).
    queue_down: AtomicBool,
}

/// Counts a job as running until dropped (also when its future is cancelled).
struct Running<'a>(&'a Activity);

impl<'a> Running<'a> {
    fn start(activity: &'a Activity) -> Self {
        activity.started.fetch_add(1, Ordering::Relaxed);
        activity.running.fetch_add(1, Ordering::Relaxed);
        activity.queue_down.store(false, Ordering::Relaxed);
        Running(activity)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn drain_job(
    job: DrainJob,
    drainer: Data<Arc<Drainer>>,
    activity: Data<Arc<Activity>>,
) -> Result<(), BoxDynError> {
    let _running = Running::start(&activity);
    if let Some(why) = &job.unreadable {
        // Another version's job: done with, so it cannot come back; its keys stay dirty, and
        // the sweep drains them once they are seen to have no job.
        tracing::error!(%why, "set aside a drain job this version cannot read");
        return Ok(());
    }
    // The keys of one job (a batch of writes) drain side by side; a failure of any has the
    // whole job delivered again, which finds the drained ones clean.
    let drains = job.keys().map(|key| drainer.drain(key, job.version));
    let failed = futures::future::join_all(drains)
        .await
        .into_iter()
        .find_map(Result::err);
    match failed {
        None => Ok(()),
        Some(e) => {
            tracing::warn!(key = %job.key, error = %e, "drain job failed; it will be retried");
            Err(e.into())
        }
    }
}

/// A worker name no other live process uses: apalis-redis refuses a name seen in the last few
/// minutes, and in a container the PID is always 1.
fn unique_worker_name(host: &str) -> String {
    let suffix: u64 = rand::rng().random();
    format!("blobproxy-drain-{host}-{suffix:016x}")
}

/// Runs the drain worker (named after `host` and a random suffix) until `shutdown`; in-flight jobs get `grace` to finish, and whatever
/// is still running after that is delivered again (apalis re-queues the jobs of a worker that
/// stops heart-beating) or drained by the sweep.
pub async fn run(
    drainer: Drainer,
    copiers: Vec<MirrorCopier>,
    queue: JobQueue,
    concurrency: usize,
    shutdown: Shutdown,
    grace: Duration,
    host: String,
) -> anyhow::Result<()> {
    let drainer = Arc::new(drainer);
    let vacuum = tokio::spawn(vacuum_finished_jobs(queue.clone()));
    let copiers: Vec<_> = copiers
        .into_iter()
        .map(|copier| tokio::spawn(copier.run(shutdown.clone())))
        .collect();
    let activity = Arc::new(Activity::default());
    let sweep = tokio::spawn(sweep_orphaned_keys(
        drainer.clone(),
        concurrency,
        activity.clone(),
    ));
    let mut pause = Duration::from_millis(200);
    // A healthy worker with a free slot fetches a waiting job within one poll.
    let stall_after = (queue.poll_interval() * 5).max(MIN_STALL);
    loop {
        let started = tokio::time::Instant::now();
        let mut monitor = Monitor::new()
            .shutdown_timeout(grace)
            // Restarts are ours (below), with a new name and a pause each time.
            .should_restart(|_, _| false);
        // One apalis worker per shard's queue; they share the drainer, so `concurrency` and
        // the byte budget bound the whole process.
        let name = unique_worker_name(&host);
        for (shard, storage) in queue.storages().iter().enumerate() {
            let (drainer, activity, storage) = (drainer.clone(), activity.clone(), storage.clone());
            let name = format!("{name}-{shard}");
            monitor = monitor.register(move |_| {
                WorkerBuilder::new(name.clone())
                    .backend(storage.clone())
                    .data(drainer.clone())
                    .data(activity.clone())
                    .concurrency(concurrency)
                    .parallelize(tokio::spawn)
                    .build(drain_job)
            });
        }
        let context = monitor.context();
        let run = monitor.run();
        tokio::pin!(run);
        tokio::select! {
            result = &mut run => {
                // A worker only stops by itself on an error (Redis down or full): start a new
                // one after a pause, rather than leave a process that drains nothing.
                let error = result.err().map(|e| e.to_string()).unwrap_or_else(|| "stopped".into());
                tracing::error!(%error, ?pause, "drain worker stopped; starting a new one");
                activity.queue_down.store(true, Ordering::Relaxed);
            }
            () = stalled(&queue, &activity, concurrency, stall_after) => {
                tracing::error!(
                    ?stall_after,
                    "jobs are waiting but the drain worker started none; starting a new one"
                );
                let _ = context.shutdown();
                let _ = tokio::time::timeout(grace, run).await;
            }
            _ = shutdown.clone() => {
                let _ = context.shutdown();
                if tokio::time::timeout(grace, run).await.is_err() {
                    tracing::warn!("jobs still running at shutdown; they will be delivered again");
                }
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            pause = Duration::from_millis(200);
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.clone() => break,
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
    vacuum.abort();
    sweep.abort();
    for copier in copiers {
        let _ = tokio::time::timeout(grace, copier).await;
    }
    Ok(())
}

/// Resolves once jobs have been waiting in the queue for `after` while this worker had a free
/// slot and started none of them: its job stream stopped delivering, whatever the cause
/// (it has no error to report, so nothing else would restart it).
pub async fn stalled(queue: &JobQueue, activity: &Activity, concurrency: usize, after: Duration) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut seen = activity.started.load(Ordering::Relaxed);
    let mut since = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let started = activity.started.load(Ordering::Relaxed);
        let busy = activity.running.load(Ordering::Relaxed) >= concurrency;
        let waiting = matches!(queue.ready().await, Ok(n) if n > 0);
        if started != seen || busy || !waiting {
            seen = started;
            since = tokio::time::Instant::now();
        } else if since.elapsed() >= after {
            return;
        }
    }
}

async fn vacuum_finished_jobs(queue: JobQueue) {
    let mut tick = tokio::time::interval(VACUUM_EVERY);
    loop {
        tick.tick().await;
        match queue.vacuum_finished().await {
            Ok(removed) => tracing::debug!(removed, "vacuumed finished drain jobs"),
            Err(e) => tracing::warn!(error = %e, "cannot vacuum finished drain jobs"),
        }
    }
}

/// Drains the keys S3 failed for whose next turn is due, and dirty keys that have waited past
/// `ORPHAN_AGE` with nobody draining them (every dirty key nobody drains, while the queue is
/// down). This does not go through the queue, so it also works when the queue cannot (Redis
/// full, a job lost).
async fn sweep_orphaned_keys(drainer: Arc<Drainer>, concurrency: usize, activity: Arc<Activity>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        match drainer.due_retries(256).await {
            Ok(due) if !due.is_empty() => {
                let drained = drain_all(&drainer, due, concurrency).await;
                tracing::info!(drained, "retried failing keys whose turn was due");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot look for failing keys to retry"),
        }
        let (age, queue) = if activity.queue_down.load(Ordering::Relaxed) {
            (Duration::ZERO, QueueHealth::Down)
        } else {
            (ORPHAN_AGE, QueueHealth::Delivering)
        };
        let orphans = match drainer.orphans(age, 256, queue).await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for orphaned dirty keys");
                continue;
            }
        };
        if orphans.is_empty() {
            continue;
        }
        let count = orphans.len();
        if queue == QueueHealth::Delivering {
            // A job really went missing (or its worker died): worth an operator's attention.
            tracing::warn!(count, "draining dirty keys whose job was lost");
            drainer.count_orphans(&orphans).await;
        } else {
            tracing::info!(count, "draining dirty keys while the queue is down");
        }
        let done = drain_all(&drainer, orphans, concurrency).await;
        tracing::info!(done, of = count, "sweep finished");
    }
}

/// Drains `keys`, `concurrency` at a time; returns how many S3 now reflects.
async fn drain_all(drainer: &Arc<Drainer>, keys: Vec<String>, concurrency: usize) -> usize {
    futures::stream::iter(keys)
        .map(|key| {
            let drainer = drainer.clone();
            async move { drainer.drain(&key, 0).await }
        })
        .buffer_unordered(concurrency)
        .filter(|r| std::future::ready(matches!(r, Ok(Drained::Done))))
        .count()
        .await
}

/// Lowers the calling thread's CPU priority to `nice` (threads it starts afterwards inherit it;
/// on Linux the nice value is per thread). Any process may lower its own priority.
pub fn lower_priority(nice: i32) -> std::io::Result<i32> {
    // SAFETY: setpriority only reads its integer arguments; who = 0 is the calling thread.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } == 0 {
        Ok(nice)
    } else {
        Err(std::io::Error::last_os_error())
    }
}
