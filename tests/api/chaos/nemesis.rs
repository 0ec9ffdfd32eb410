//! The nemesis: which faults, when and for how long, all drawn from the run's seed before it
//! starts, so one seed always gives the same schedule.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

/// Which process a fault hits: the `n`th replica or worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    Replica(usize),
    Worker(usize),
}

/// What a partition cuts a process off from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Redis,
    S3,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL, restarted when the fault ends.
    Kill(Member),
    /// SIGSTOP, SIGCONT when the fault ends.
    Pause(Member),
    /// SIGKILL of Redis (single: the server, restarted from its AOF; cluster: a master, which
    /// its replica replaces; the node comes back as a replica).
    KillRedis,
    /// SIGSTOP of Redis (cluster: a master, paused past the failover timeout).
    PauseRedis,
    /// The S3 server stopped (connections refused), restarted on the same data.
    S3Down,
    /// Every S3 request held this long first.
    S3Slow(Duration),
    /// Every S3 request answered with this status and error code.
    S3Errors(u16, &'static str),
    /// The next object writes answered 503 SlowDown with `Retry-After` seconds.
    S3SlowDown { writes: u32, retry_after: u64 },
    /// The process's connections to Redis or S3 dropped and refused (to Redis: single Redis
    /// only).
    Partition(Member, Side),
    /// Redis's `maxmemory` lowered to what it already holds: writes answer `cache_full`.
    RedisFull,
}

/// One fault of the schedule.
#[derive(Debug, Clone)]
pub struct Planned {
    pub at: Duration,
    pub lasts: Duration,
    pub fault: Fault,
}

/// The faults of a run of `length` with `replicas` and `workers`, one at a time with gaps, in
/// the last part of it none (the run ends with faults healed). `redis_partitions`: whether
/// the topology can cut one process off from Redis.
pub fn schedule(
    seed: u64,
    length: Duration,
    replicas: usize,
    workers: usize,
    redis_partitions: bool,
) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6e656d65_73697321);
    let mut planned = Vec::new();
    let mut at = Duration::from_secs(3);
    let quiet_end = length.saturating_sub(Duration::from_secs(5));
    loop {
        let lasts = Duration::from_millis(rng.random_range(1_000..6_000));
        if at + lasts > quiet_end {
            return planned;
        }
        let member = |rng: &mut StdRng| {
            if rng.random_bool(0.6) {
                Member::Replica(rng.random_range(0..replicas))
            } else {
                Member::Worker(rng.random_range(0..workers))
            }
        };
        let fault = match rng.random_range(0..11) {
            0 => Fault::Kill(member(&mut rng)),
            1 => Fault::Pause(member(&mut rng)),
            2 => Fault::KillRedis,
            3 => Fault::PauseRedis,
            4 => Fault::S3Down,
            5 => Fault::S3Slow(Duration::from_millis(rng.random_range(1_000..4_000))),
            6 => match rng.random_range(0..3) {
                0 => Fault::S3Errors(500, "InternalError"),
                1 => Fault::S3Errors(503, "ServiceUnavailable"),
                _ => Fault::S3Errors(503, "SlowDown"),
            },
            7 => Fault::S3SlowDown {
                writes: rng.random_range(1..20),
                retry_after: rng.random_range(1..4),
            },
            8 => Fault::Partition(member(&mut rng), Side::S3),
            9 if redis_partitions => Fault::Partition(member(&mut rng), Side::Redis),
            9 => Fault::Kill(member(&mut rng)),
            _ => Fault::RedisFull,
        };
        planned.push(Planned { at, lasts, fault });
        at += lasts + Duration::from_millis(rng.random_range(1_000..5_000));
    }
}

/// When the mirror store goes down in a run of `length`, and for how long: from its own
/// stream of the seed, so adding it left every seed's other faults as they were.
pub fn mirror_outage(seed: u64, length: Duration) -> (Duration, Duration) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6d69_7272_6f72);
    let quiet_end = length.saturating_sub(Duration::from_secs(5)).as_millis() as u64;
    let lasts = rng.random_range(2_000..8_000).min(quiet_end / 2);
    let at = rng.random_range(1_000..quiet_end.saturating_sub(lasts).max(1_001));
    (Duration::from_millis(at), Duration::from_millis(lasts))
}

#[test]
fn one_seed_gives_one_schedule_and_the_run_ends_healed() {
    let length = Duration::from_secs(120);
    let a = schedule(7, length, 3, 2, true);
    let b = schedule(7, length, 3, 2, true);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert_ne!(
        format!("{a:?}"),
        format!("{:?}", schedule(8, length, 3, 2, true))
    );
    assert!(a.len() >= 10, "{} faults in 2 minutes", a.len());
    let last = a.last().unwrap();
    assert!(last.at + last.lasts <= length - Duration::from_secs(5));
    assert!(
        schedule(7, length, 3, 2, false)
            .iter()
            .all(|p| !matches!(p.fault, Fault::Partition(_, Side::Redis)))
    );
}
