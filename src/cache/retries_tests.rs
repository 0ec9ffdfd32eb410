//! The failing keys' schedule against a real redis-server: what `retry_later.lua` keeps, what a
//! new write and an upload do to it.

use std::time::Duration;

use super::*;
use crate::cache::test_redis::TestRedis;
use crate::cache::{Finish, UploadLease};

const TTL: Duration = Duration::from_secs(10);

fn backoff(first_secs: u64) -> Backoff {
    Backoff {
        first: Duration::from_secs(first_secs),
        cap: Duration::from_secs(600),
    }
}

#[tokio::test]
async fn a_failing_key_waits_its_backoff_which_a_new_write_cuts_short_and_an_upload_ends() {
    let redis = TestRedis::start().await;
    let cache = redis.cache().await;
    let key = BlobKey::parse("k").unwrap();
    cache.put(&key, "", "x/y", b"1", None).await.unwrap();
    let lease = UploadLease::claim(&cache, &key, TTL)
        .await
        .unwrap()
        .unwrap();
    let (turns, delay) = cache
        .retry_later(&key, &lease, "500 InternalError", backoff(60), None)
        .await
        .unwrap();
    assert_eq!(turns, 1);
    // Jitter keeps it within [50%, 100%] of the first wait.
    assert!((30..=60).contains(&delay.as_secs()), "{delay:?}");
    assert!(cache.due_retries(10).await.unwrap().is_empty());
    let failing = cache.failing(10).await.unwrap();
    assert_eq!(failing.count, 1);
    assert_eq!(
        (failing.sample[0].key.as_str(), failing.sample[0].attempts),
        ("k", 1)
    );
    assert_eq!(failing.sample[0].error, "500 InternalError");
    // The lease was given back; the next turn doubles the wait, and S3's ask is a floor.
    let lease = UploadLease::claim(&cache, &key, TTL)
        .await
        .unwrap()
        .unwrap();
    let asked = Some(Duration::from_secs(500));
    let (turns, delay) = cache
        .retry_later(&key, &lease, "503 SlowDown", backoff(60), asked)
        .await
        .unwrap();
    assert_eq!((turns, delay.as_secs()), (2, 500));
    // A new version of the key is due at once...
    cache.put(&key, "", "x/y", b"2", None).await.unwrap();
    assert_eq!(cache.due_retries(10).await.unwrap(), ["k"]);
    // ...and reaching S3 ends its failures.
    let lease = UploadLease::claim(&cache, &key, TTL)
        .await
        .unwrap()
        .unwrap();
    let version = cache.get(&key).await.unwrap().unwrap().version;
    let finished = cache.finish_upload(&key, &lease, version, TTL).await;
    assert_eq!(finished.unwrap(), Finish::Clean);
    assert_eq!(cache.failing(10).await.unwrap().count, 0);
    assert!(cache.due_retries(10).await.unwrap().is_empty());
}
