//! What the fault-injection tests promise to check: every write the service acknowledged is
//! in S3 (the last acknowledged version of each key, or no object if that was a delete).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::helpers::{S3Object, S3Server};

#[derive(Clone, Debug)]
struct Attempt {
    /// `None` for a delete.
    data: Option<Vec<u8>>,
    /// The version the service acknowledged, if it did.
    acked: Option<u64>,
}

/// Every write attempted, per key, and which ones were acknowledged.
#[derive(Clone, Default)]
pub struct Ledger {
    attempts: Arc<Mutex<HashMap<String, Vec<Attempt>>>>,
}

impl Ledger {
    pub fn record(&self, key: &str, data: Option<Vec<u8>>, acked: Option<u64>) {
        self.attempts
            .lock()
            .unwrap()
            .entry(key.to_owned())
            .or_default()
            .push(Attempt { data, acked });
    }

    pub fn acknowledged(&self) -> usize {
        self.attempts
            .lock()
            .unwrap()
            .values()
            .flatten()
            .filter(|a| a.acked.is_some())
            .count()
    }

    /// Keys whose S3 state does not hold their last acknowledged write, with why.
    ///
    /// A write that was not acknowledged (its connection failed while Redis restarted, say)
    /// may or may not have happened; if it did, it is newer than the last acknowledged one,
    /// and S3 may hold it instead.
    pub async fn lost_writes(&self, s3: &S3Server) -> Vec<String> {
        let snapshot = self.attempts.lock().unwrap().clone();
        let mut lost = Vec::new();
        for (key, attempts) in snapshot {
            let Some(last) = attempts
                .iter()
                .filter(|a| a.acked.is_some())
                .max_by_key(|a| a.acked)
            else {
                continue;
            };
            let version = last.acked.unwrap();
            let unacked = || attempts.iter().filter(|a| a.acked.is_none());
            let object: Option<S3Object> = s3.object(&key).await;
            let fine = match (&object, &last.data) {
                (Some(o), Some(data)) if o.version == version => o.data == *data,
                (Some(o), _) if o.version > version => {
                    unacked().any(|a| a.data.as_ref() == Some(&o.data))
                }
                (Some(_), _) => false, // older than the last acknowledged write
                (None, None) => true,
                (None, Some(_)) => unacked().any(|a| a.data.is_none()),
            };
            if !fine {
                lost.push(format!(
                    "{key}: last acknowledged v{version} ({}), S3 holds {}",
                    if last.data.is_some() {
                        "write"
                    } else {
                        "delete"
                    },
                    object
                        .map(|o| format!("v{}", o.version))
                        .unwrap_or_else(|| "nothing".into())
                ));
            }
        }
        lost
    }

    /// Prints the run's counts, and keeps them in target/tmp/durability.log for the test script.
    pub fn report(&self, test: &str, faults: usize, lost: usize) {
        let line = format!(
            "durability {test}: writes acknowledged={} faults injected={faults} writes lost={lost}",
            self.acknowledged()
        );
        println!("{line}");
        let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("durability.log");
        use std::io::Write as _;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}
