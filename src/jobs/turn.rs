//! One turn of attempts at S3 for a key: a few in a row with a short backoff (honouring
//! `Retry-After` up to a second), then the drain gives its worker slot back, so a key S3
//! keeps failing for never holds a slot for longer than one turn.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};

use crate::cache::BlobCache;
use crate::domain::{Blob, BlobKey};
use crate::store::{BlobStore, StoreError};

/// Attempts in a row for a failure S3 calls permanent (403, a missing bucket...) before the key
/// is dead-lettered.
const PERMANENT_ATTEMPTS: usize = 4;

/// Attempts in a row for transient failures before the drain gives its slot back and the key
/// waits for its next turn. Each is one request (the store does not retry these itself), so
/// a turn against a server answering 500 holds a slot for three requests and two short pauses.
const TRANSIENT_ATTEMPTS: usize = 3;

/// Longest pause between attempts in a row; S3 asking for longer ends the turn instead.
const MAX_PAUSE_IN_A_TURN: Duration = Duration::from_secs(1);

/// How a turn ended without S3 taking the key.
pub enum Refused {
    /// Dead-letter the key.
    Permanent(StoreError),
    /// Give the key its next turn later.
    Transient(StoreError),
}

/// Stores the blob, or deletes the object for a delete marker (`None`): a few attempts in a
/// row, then the last error, as a failure proved permanent or not. Each failure is counted
/// for `/metrics`.
pub async fn write_to_s3(
    store: &dyn BlobStore,
    cache: &BlobCache,
    key: &BlobKey,
    blob: Option<&Blob>,
    version: u64,
) -> Result<(), Refused> {
    let attempt = || async {
        match blob {
            Some(blob) => store.put(key, blob).await,
            None => store.delete(key, version).await,
        }
    };
    let (mut permanent_failures, mut transient_failures) = (0, 0);
    attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(50))
                .with_max_delay(MAX_PAUSE_IN_A_TURN)
                .with_jitter()
                .without_max_times(),
        )
        .when(|e| match e {
            StoreError::Permanent(_) => {
                permanent_failures += 1;
                permanent_failures < PERMANENT_ATTEMPTS
            }
            StoreError::Transient { retry_after, .. } => {
                transient_failures += 1;
                transient_failures < TRANSIENT_ATTEMPTS
                    && retry_after.is_none_or(|asked| asked <= MAX_PAUSE_IN_A_TURN)
            }
        })
        .adjust(|e, delay| {
            let asked = match e {
                StoreError::Transient { retry_after, .. } => *retry_after,
                StoreError::Permanent(_) => None,
            };
            delay.map(|d| pause(d, asked, MAX_PAUSE_IN_A_TURN))
        })
        .notify(|e, pause| {
            tracing::warn!(error = %e, ?pause, "S3 write failed; retrying");
            let (cache, key) = (cache.clone(), key.clone());
            tokio::spawn(async move { cache.count_upload_failure(&key).await });
        })
        .await
        .map_err(|e| {
            // The last failure of the turn, which no retry announced.
            let (cache, key) = (cache.clone(), key.clone());
            tokio::spawn(async move { cache.count_upload_failure(&key).await });
            match e {
                StoreError::Permanent(_) => Refused::Permanent(e),
                StoreError::Transient { .. } => Refused::Transient(e),
            }
        })
}

/// The pause before the next attempt: the backoff's (jitter included) capped at `cap`, but
/// never shorter than what the server asked for: it knows best how long it needs.
fn pause(backoff: Duration, asked: Option<Duration>, cap: Duration) -> Duration {
    backoff.min(cap).max(asked.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::pause;
    use std::time::Duration;

    #[test]
    fn pauses_stay_under_the_cap_unless_the_server_asks_for_longer() {
        let s = Duration::from_secs;
        assert_eq!(pause(Duration::from_millis(9_900), None, s(5)), s(5));
        assert_eq!(pause(s(1), None, s(5)), s(1));
        assert_eq!(pause(s(1), Some(s(3)), s(5)), s(3));
        assert_eq!(pause(s(9), Some(s(30)), s(5)), s(30));
    }
}
