//! The history of a run (every operation with when it started and ended and what it was
//! answered) and the checker that reads it whole and says where an answer broke a promise.
//!
//! Versions order the writes of a key (Redis hands them out); values are unique per write, so a
//! value read names the write it came from. Any answer but a success may or may not have been
//! applied (a replica killed mid-request, a timeout): such operations are "indeterminate" and
//! may explain what is seen, but promise nothing.

use std::collections::BTreeMap;
use std::time::Duration;

/// What a client asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Write {
        key: String,
        value: String,
        wc: bool,
    },
    Delete {
        key: String,
        wc: bool,
    },
    Read {
        key: String,
        replica: usize,
    },
    List,
}

/// What it was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A write or delete acknowledged at `version`.
    Done { version: u64 },
    /// A read's value (its write's value and version), or `None` for 404.
    Read(Option<(String, u64)>),
    /// The keys a listing showed.
    Listed(Vec<String>),
    /// Anything else (an error status, a timeout, a broken connection): it may or may not
    /// have been applied.
    Indeterminate(String),
}

#[derive(Debug, Clone)]
pub struct Op {
    pub client: usize,
    pub kind: Kind,
    pub start: Duration,
    pub end: Duration,
    pub answer: Answer,
    /// For an acknowledged `wc=1` write or delete: the version S3 held right after the
    /// acknowledgement (`None`: no object), and when that was read.
    pub s3_after_ack: Option<(Option<u64>, Duration)>,
}

impl Op {
    fn key(&self) -> Option<&str> {
        match &self.kind {
            Kind::Write { key, .. } | Kind::Delete { key, .. } | Kind::Read { key, .. } => {
                Some(key)
            }
            Kind::List => None,
        }
    }

    fn acked_version(&self) -> Option<u64> {
        match self.answer {
            Answer::Done { version } => Some(version),
            _ => None,
        }
    }

    fn is_delete(&self) -> bool {
        matches!(self.kind, Kind::Delete { .. })
    }
}

/// What a key holds once the run is over: in S3 and as each replica reads it, as (value,
/// version), `None` for no object.
#[derive(Debug, Clone, Default)]
pub struct Final {
    pub s3: Option<(String, u64)>,
    pub reads: Vec<Option<(String, u64)>>,
    /// What the mirror store holds (`None` in a run without one).
    pub mirror: Option<Option<(String, u64)>>,
}

/// A broken promise, with the operations that show it.
#[derive(Debug, Clone)]
pub struct Anomaly {
    pub what: String,
    pub ops: Vec<Op>,
}

/// Everything the checker found, and what it counted without failing.
#[derive(Debug, Default)]
pub struct Verdict {
    pub anomalies: Vec<Anomaly>,
    /// Writes not acknowledged that were applied all the same (a legal outcome).
    pub applied_unacknowledged: usize,
}

/// The acknowledged operations of one key, by end time, with the highest version among those
/// that ended so far: answers "what is the newest acknowledged operation that had ended by
/// time t" in a binary search.
struct Acked<'a> {
    by_end: Vec<&'a Op>,
    /// Index into `by_end` of the op with the highest version among `by_end[..=i]`.
    newest: Vec<usize>,
}

impl<'a> Acked<'a> {
    fn of(ops: &[&'a Op]) -> Self {
        let mut by_end: Vec<&Op> = ops
            .iter()
            .copied()
            .filter(|op| op.acked_version().is_some())
            .collect();
        by_end.sort_by_key(|op| op.end);
        let mut newest: Vec<usize> = Vec::with_capacity(by_end.len());
        for (i, op) in by_end.iter().enumerate() {
            let best = match newest.last() {
                Some(&b) if by_end[b].acked_version() >= op.acked_version() => b,
                _ => i,
            };
            newest.push(best);
        }
        Acked { by_end, newest }
    }

    /// The newest acknowledged operation that ended before `t`.
    fn before(&self, t: Duration) -> Option<&'a Op> {
        let ended = self.by_end.partition_point(|op| op.end < t);
        (ended > 0).then(|| self.by_end[self.newest[ended - 1]])
    }

    /// The newest acknowledged operation of all.
    fn last(&self) -> Option<&'a Op> {
        self.newest.last().map(|&i| self.by_end[i])
    }
}

/// Reads the whole history and the final state; returns every broken promise.
pub fn check(history: &[Op], finals: &BTreeMap<String, Final>) -> Verdict {
    let mut verdict = Verdict::default();
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history {
        if let Some(key) = op.key() {
            by_key.entry(key).or_default().push(op);
        }
    }
    for key in finals.keys() {
        by_key.entry(key).or_default();
    }
    let mut anomaly = |what: String, ops: Vec<&Op>| {
        verdict.anomalies.push(Anomaly {
            what,
            ops: ops.into_iter().cloned().collect(),
        })
    };
    let mut applied_unacknowledged = 0;
    let ackeds: BTreeMap<&str, Acked> = by_key
        .iter()
        .map(|(key, ops)| (*key, Acked::of(ops)))
        .collect();
    for (key, ops) in &by_key {
        let acked = &ackeds[key];
        let write_of = |value: &str| {
            ops.iter()
                .copied()
                .find(|op| matches!(&op.kind, Kind::Write { value: v, .. } if v == value))
        };
        // A delete that may have been applied before `t` with a version above `floor`.
        let delete_may_explain = |t: Duration, floor: u64| {
            ops.iter().any(|op| {
                op.is_delete()
                    && op.start < t
                    && op.acked_version().is_none_or(|version| version > floor)
            })
        };
        // Versions of a key follow real time: an operation acknowledged before another
        // started has the lower version.
        for op in ops {
            if let (Some(version), Some(before)) = (op.acked_version(), acked.before(op.start))
                && before.acked_version().unwrap() >= version
            {
                anomaly(
                    format!(
                        "{key}: version {version} is not above {} acknowledged before it started",
                        before.acked_version().unwrap()
                    ),
                    vec![before, op],
                );
            }
        }
        // Reads: a value some write wrote, never older than what was acknowledged before the
        // read started, never a delete undone.
        for op in ops {
            let Answer::Read(seen) = &op.answer else {
                continue;
            };
            let floor = acked.before(op.start);
            match seen {
                Some((value, version)) => {
                    let Some(write) = write_of(value) else {
                        anomaly(
                            format!("{key}: read a value never written ({value})"),
                            vec![op],
                        );
                        continue;
                    };
                    if write.start > op.end {
                        anomaly(
                            format!("{key}: read a value before its write started"),
                            vec![write, op],
                        );
                    }
                    if write.acked_version().is_some_and(|v| v != *version) {
                        anomaly(
                            format!(
                                "{key}: read {value} at version {version}, acknowledged at another"
                            ),
                            vec![write, op],
                        );
                    }
                    if let Some(floor) = floor
                        && *version < floor.acked_version().unwrap()
                    {
                        let what = if floor.is_delete() {
                            "read a value its acknowledged delete removed"
                        } else {
                            "stale read: older than a write acknowledged before it started"
                        };
                        anomaly(format!("{key}: {what}"), vec![floor, op]);
                    }
                }
                None => {
                    if let Some(floor) = floor.filter(|f| !f.is_delete())
                        && !delete_may_explain(op.end, floor.acked_version().unwrap())
                    {
                        anomaly(
                            format!(
                                "{key}: read 404 after an acknowledged write, with no delete since"
                            ),
                            vec![floor, op],
                        );
                    }
                }
            }
        }
        // wc=1: S3 held the version (or a newer one) once it was acknowledged.
        for op in ops {
            let (Some(version), Some((held, read_at))) = (op.acked_version(), op.s3_after_ack)
            else {
                continue;
            };
            let fine = match held {
                Some(held) => held >= version,
                None => op.is_delete() || delete_may_explain(read_at, version),
            };
            if !fine {
                anomaly(
                    format!(
                        "{key}: acknowledged with wc=1 at version {version}, but S3 held {held:?}"
                    ),
                    vec![op],
                );
            }
        }
        // The end: S3 holds the newest acknowledged operation's outcome, or a newer write that
        // was not acknowledged; every replica reads what S3 holds.
        let Some(end) = finals.get(*key) else {
            continue;
        };
        let last = acked.last();
        let last_version = last.and_then(Op::acked_version).unwrap_or(0);
        match &end.s3 {
            Some((value, version)) => match write_of(value) {
                None => anomaly(
                    format!("{key}: S3 holds a value never written ({value})"),
                    vec![],
                ),
                Some(write) => match (write.acked_version(), last) {
                    (Some(v), _) if v != *version => anomaly(
                        format!(
                            "{key}: S3 holds {value} at version {version}, acknowledged at {v}"
                        ),
                        vec![write],
                    ),
                    (_, Some(last)) if *version < last_version => anomaly(
                        format!(
                            "{key}: acknowledged {} at version {last_version} lost: S3 holds version {version}",
                            if last.is_delete() { "delete" } else { "write" }
                        ),
                        vec![last, write],
                    ),
                    (None, _) if *version > last_version => applied_unacknowledged += 1,
                    _ => {}
                },
            },
            None => {
                if let Some(last) = last.filter(|l| !l.is_delete())
                    && !delete_may_explain(Duration::MAX, last_version)
                {
                    anomaly(
                        format!(
                            "{key}: acknowledged write at version {last_version} lost: S3 has no object"
                        ),
                        vec![last],
                    );
                }
            }
        }
        if let Some(mirror) = &end.mirror
            && mirror != &end.s3
        {
            anomaly(
                format!(
                    "{key}: the mirror holds {mirror:?} after the flush, S3 holds {:?}",
                    end.s3
                ),
                vec![],
            );
        }
        for (replica, read) in end.reads.iter().enumerate() {
            if read != &end.s3 {
                anomaly(
                    format!(
                        "{key}: replica {replica} reads {read:?} after the flush, S3 holds {:?}",
                        end.s3
                    ),
                    vec![],
                );
            }
        }
    }
    // Listings: a key whose newest acknowledged operation before the listing is a write, and
    // that nothing may have deleted since, is listed; a listed key was written.
    let first_start = |key: &str, delete: bool| {
        by_key[key]
            .iter()
            .filter(|op| op.is_delete() == delete && !matches!(op.kind, Kind::Read { .. }))
            .map(|op| op.start)
            .min()
            .unwrap_or(Duration::MAX)
    };
    let firsts: BTreeMap<&str, (Duration, Duration)> = by_key
        .keys()
        .map(|key| (*key, (first_start(key, false), first_start(key, true))))
        .collect();
    for op in history {
        let Answer::Listed(listed) = &op.answer else {
            continue;
        };
        for (key, acked) in &ackeds {
            let (first_write, first_delete) = firsts[key];
            let shown = listed.iter().any(|k| k == key);
            if let Some(floor) = acked.before(op.start).filter(|f| !f.is_delete())
                && !shown
                && first_delete >= op.end
            {
                anomaly(
                    format!("listing misses {key}, written and acknowledged before it"),
                    vec![floor, op],
                );
            }
            if shown && first_write >= op.end {
                anomaly(
                    format!("listing shows {key}, which was never written"),
                    vec![op],
                );
            }
        }
    }
    verdict.applied_unacknowledged = applied_unacknowledged;
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn op(kind: Kind, start: u64, end: u64, answer: Answer) -> Op {
        Op {
            client: 0,
            kind,
            start: ms(start),
            end: ms(end),
            answer,
            s3_after_ack: None,
        }
    }

    fn write(value: &str, start: u64, end: u64, version: u64) -> Op {
        let kind = Kind::Write {
            key: "k".into(),
            value: value.into(),
            wc: false,
        };
        op(kind, start, end, Answer::Done { version })
    }

    fn delete(start: u64, end: u64, version: u64) -> Op {
        let kind = Kind::Delete {
            key: "k".into(),
            wc: false,
        };
        op(kind, start, end, Answer::Done { version })
    }

    fn read(start: u64, end: u64, seen: Option<(&str, u64)>) -> Op {
        let kind = Kind::Read {
            key: "k".into(),
            replica: 0,
        };
        op(
            kind,
            start,
            end,
            Answer::Read(seen.map(|(v, n)| (v.into(), n))),
        )
    }

    fn finals(s3: Option<(&str, u64)>) -> BTreeMap<String, Final> {
        let s3 = s3.map(|(v, n)| (v.to_owned(), n));
        BTreeMap::from([(
            "k".to_owned(),
            Final {
                reads: vec![s3.clone()],
                mirror: Some(s3.clone()),
                s3,
            },
        )])
    }

    fn anomalies(history: &[Op], s3: Option<(&str, u64)>) -> Vec<String> {
        check(history, &finals(s3))
            .anomalies
            .into_iter()
            .map(|a| a.what)
            .collect()
    }

    #[test]
    fn a_history_that_keeps_every_promise_has_no_anomaly() {
        let history = [
            write("a", 0, 10, 1),
            read(5, 8, None),
            read(11, 12, Some(("a", 1))),
            write("b", 20, 30, 2),
            read(25, 26, Some(("a", 1))), // concurrent with b: either is fine
            delete(40, 50, 3),
            read(60, 61, None),
            write("c", 70, 80, 4),
            op(Kind::List, 90, 95, Answer::Listed(vec!["k".into()])),
        ];
        assert_eq!(anomalies(&history, Some(("c", 4))), Vec::<String>::new());
    }

    #[test]
    fn each_broken_promise_is_caught() {
        let stale = [
            write("a", 0, 10, 1),
            write("b", 20, 30, 2),
            read(40, 41, Some(("a", 1))),
        ];
        assert!(anomalies(&stale, Some(("b", 2)))[0].contains("stale read"));
        let resurrected = [
            write("a", 0, 10, 1),
            delete(20, 30, 2),
            read(40, 41, Some(("a", 1))),
        ];
        assert!(anomalies(&resurrected, None)[0].contains("delete removed"));
        let invented = [write("a", 0, 10, 1), read(20, 21, Some(("zzz", 7)))];
        assert!(anomalies(&invented, Some(("a", 1)))[0].contains("never written"));
        let lost = [write("a", 0, 10, 1), write("b", 20, 30, 2)];
        assert!(anomalies(&lost, Some(("a", 1)))[0].contains("lost"));
        let gone = [write("a", 0, 10, 1)];
        assert!(anomalies(&gone, None)[0].contains("lost"));
        let backwards = [write("a", 0, 10, 5), write("b", 20, 30, 4)];
        assert!(anomalies(&backwards, Some(("b", 4)))[0].contains("not above"));
        let vanished = [write("a", 0, 10, 1), read(20, 21, None)];
        assert!(anomalies(&vanished, Some(("a", 1)))[0].contains("404"));
        let unlisted = [
            write("a", 0, 10, 1),
            op(Kind::List, 20, 21, Answer::Listed(vec![])),
        ];
        assert!(anomalies(&unlisted, Some(("a", 1)))[0].contains("listing misses"));
        let mut early = write("a", 0, 10, 3);
        early.kind = Kind::Write {
            key: "k".into(),
            value: "a".into(),
            wc: true,
        };
        early.s3_after_ack = Some((Some(2), ms(11)));
        assert!(anomalies(&[early], Some(("a", 3)))[0].contains("wc=1"));
        let mut diverged = finals(Some(("a", 1)));
        diverged.get_mut("k").unwrap().reads[0] = None;
        let found = check(&[write("a", 0, 10, 1)], &diverged).anomalies;
        assert!(found[0].what.contains("replica 0 reads"));
        let mut behind = finals(Some(("b", 2)));
        behind.get_mut("k").unwrap().mirror = Some(Some(("a".into(), 1)));
        let history = [write("a", 0, 10, 1), write("b", 20, 30, 2)];
        let found = check(&history, &behind).anomalies;
        assert!(found[0].what.contains("the mirror holds"), "{found:?}");
    }

    #[test]
    fn writes_that_were_not_acknowledged_may_explain_what_is_seen() {
        let mut maybe = write("b", 20, 30, 0);
        maybe.answer = Answer::Indeterminate("503 replicas_unavailable".into());
        let history = [write("a", 0, 10, 1), maybe, read(40, 41, Some(("b", 2)))];
        let verdict = check(&history, &finals(Some(("b", 2))));
        assert!(verdict.anomalies.is_empty(), "{:?}", verdict.anomalies);
        assert_eq!(verdict.applied_unacknowledged, 1);
    }
}
