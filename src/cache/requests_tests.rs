//! Writes that name their request, against a real redis-server: `put.lua` (small and staged
//! blobs) and a delete's repeat after the key is gone.

use redis::AsyncCommands as _;

use super::*;
use crate::cache::layout::ShardKeys;
use crate::cache::test_redis::TestRedis;

fn key(k: &str) -> BlobKey {
    BlobKey::parse(k).unwrap()
}

#[tokio::test]
async fn a_put_that_names_its_request_is_written_once_small_or_staged() {
    let redis = TestRedis::start().await;
    let (cache, mut raw) = (redis.cache().await, redis.raw().await);
    let keys = ShardKeys::single();
    for (k, size) in [("small", 10), ("staged", 64 * 1024)] {
        let id = IdempotencyKey::parse(format!("req-{k}").as_str()).unwrap();
        let data = vec![7u8; size];
        let first = cache
            .put(&key(k), "", "x/y", &data, Some(&id))
            .await
            .unwrap();
        let again = cache
            .put(&key(k), "", "x/y", &data, Some(&id))
            .await
            .unwrap();
        assert!(!first.repeated && first.queued, "{k}");
        assert!(
            again.repeated && !again.queued && again.version == first.version,
            "{k}"
        );
        // Another key or other bytes under the same request key: refused, nothing written.
        let other_bytes = cache.put(&key(k), "", "x/y", b"other", Some(&id)).await;
        assert!(matches!(other_bytes, Err(CacheError::RequestReused)), "{k}");
        let other_key = cache
            .put(&key("elsewhere"), "", "x/y", &data, Some(&id))
            .await;
        assert!(matches!(other_key, Err(CacheError::RequestReused)), "{k}");
        assert_eq!(
            cache.get(&key(k)).await.unwrap().unwrap().version,
            first.version
        );
        assert!(cache.get(&key("elsewhere")).await.unwrap().is_none());
        // A write that names no request is written every time.
        let unnamed = cache.put(&key(k), "", "x/y", &data, None).await.unwrap();
        assert!(!unnamed.repeated && unnamed.version > first.version, "{k}");
    }
    // One job per key (the first write's), and no staged bytes left behind by the repeat.
    let jobs: u64 = raw.llen(&keys.queue.active).await.unwrap();
    assert_eq!(jobs, 2);
    let staged: Vec<String> = raw.keys(keys.stage("*")).await.unwrap();
    assert!(staged.is_empty(), "{staged:?}");
}

#[tokio::test]
async fn a_repeated_delete_of_a_key_it_took_away_finds_its_answer() {
    let redis = TestRedis::start().await;
    let cache = redis.cache().await;
    let id = IdempotencyKey::parse("del-1").unwrap();
    cache.put(&key("d"), "", "x/y", b"x", None).await.unwrap();
    let deleted = cache.delete(&key("d"), Some(&id)).await.unwrap();
    assert_eq!(
        cache.earlier_delete(&key("d"), &id).await.unwrap(),
        Some(deleted.version)
    );
    let never = IdempotencyKey::parse("del-2").unwrap();
    assert_eq!(cache.earlier_delete(&key("d"), &never).await.unwrap(), None);
    // The same request key on a delete of another key is no repeat of it.
    assert!(matches!(
        cache.earlier_delete(&key("other"), &id).await,
        Err(CacheError::RequestReused)
    ));
}
