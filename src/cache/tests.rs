//! One test per Lua script, against a real redis-server: what each writes, and what it refuses.

use std::time::Duration;

use redis::AsyncCommands as _;

use super::layout::{ShardKeys, record};
use super::test_redis::TestRedis;
use super::*;
use crate::domain::BlobKey;

/// The keys of single-node Redis's one shard.
fn keys() -> ShardKeys {
    ShardKeys::single()
}

fn key(k: &str) -> BlobKey {
    BlobKey::parse(k).unwrap()
}

const TTL: Duration = Duration::from_secs(10);

#[tokio::test]
async fn put_writes_a_dirty_record_and_one_job_until_the_key_is_clean() {
    let redis = TestRedis::start().await;
    let (cache, mut raw) = (redis.cache().await, redis.raw().await);
    let first = cache
        .put(&key("a"), "txt", "text/plain", b"hi", None)
        .await
        .unwrap();
    assert!(first.queued);
    let second = cache
        .put(&key("a"), "txt", "text/plain", b"ho", None)
        .await
        .unwrap();
    assert!(
        !second.queued,
        "the key was dirty: its drain picks the new version up"
    );
    assert!(second.version > first.version);
    let fields: std::collections::HashMap<String, Vec<u8>> =
        raw.hgetall(keys().record("a")).await.unwrap();
    assert_eq!(fields[record::DATA], b"ho");
    assert_eq!(fields[record::STATE], record::DIRTY.as_bytes());
    assert_eq!(
        raw.ttl::<_, i64>(keys().record("a")).await.unwrap(),
        -1,
        "dirty records never expire"
    );
    assert_eq!(raw.llen::<_, u64>(keys().queue.active).await.unwrap(), 1);
    assert!(
        raw.zscore::<_, _, Option<f64>>(keys().dirty, "a")
            .await
            .unwrap()
            .is_some()
    );
    // A large blob goes through the staging hash and leaves none behind.
    let large = vec![7u8; 64 * 1024];
    cache
        .put(&key("big"), "", "x/y", &large, None)
        .await
        .unwrap();
    assert_eq!(
        cache
            .get(&key("big"))
            .await
            .unwrap()
            .unwrap()
            .blob
            .unwrap()
            .data,
        large
    );
    assert!(
        raw.keys::<_, Vec<String>>(keys().stage("*"))
            .await
            .unwrap()
            .is_empty()
    );
    // A delete is a new dirty version without bytes.
    cache.delete(&key("a"), None).await.unwrap();
    let cached = cache.get(&key("a")).await.unwrap().unwrap();
    assert!(cached.blob.is_none() && !cached.persisted);
}

#[tokio::test]
async fn put_on_a_full_redis_is_refused_and_writes_nothing() {
    let redis = TestRedis::start().await;
    let (cache, mut raw) = (redis.cache().await, redis.raw().await);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(1)
        .query_async(&mut raw)
        .await
        .unwrap();
    let refused = cache.put(&key("a"), "", "x/y", b"hi", None).await;
    assert!(
        matches!(refused, Err(CacheError::OutOfMemory(_))),
        "{refused:?}"
    );
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(cache.get(&key("a")).await.unwrap().is_none());
    assert_eq!(raw.llen::<_, u64>(keys().queue.active).await.unwrap(), 0);
}

#[tokio::test]
async fn recache_stores_a_clean_copy_with_a_ttl_but_never_over_a_record() {
    let redis = TestRedis::start().await;
    let (cache, mut raw) = (redis.cache().await, redis.raw().await);
    let blob = |v| crate::domain::Blob {
        data: bytes::Bytes::from_static(b"old"),
        extension: String::new(),
        content_type: "x/y".into(),
        version: v,
    };
    assert!(cache.recache(&key("r"), &blob(1), TTL).await.unwrap());
    assert!(cache.get(&key("r")).await.unwrap().unwrap().persisted);
    assert!(raw.ttl::<_, i64>(keys().record("r")).await.unwrap() > 0);
    let newer = cache.put(&key("w"), "", "x/y", b"new", None).await.unwrap();
    assert!(!cache.recache(&key("w"), &blob(1), TTL).await.unwrap());
    assert_eq!(
        cache.get(&key("w")).await.unwrap().unwrap().version,
        newer.version
    );
}

#[tokio::test]
async fn a_lease_has_one_holder_until_it_is_released() {
    let redis = TestRedis::start().await;
    let cache = redis.cache().await;
    let held = UploadLease::claim(&cache, &key("l"), TTL)
        .await
        .unwrap()
        .unwrap();
    assert!(
        UploadLease::claim(&cache, &key("l"), TTL)
            .await
            .unwrap()
            .is_none()
    );
    held.release().await.unwrap();
    let again = UploadLease::claim(&cache, &key("l"), Duration::from_millis(50))
        .await
        .unwrap();
    assert!(again.is_some());
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(
        UploadLease::claim(&cache, &key("l"), TTL)
            .await
            .unwrap()
            .is_some(),
        "expired"
    );
}

#[tokio::test]
async fn finish_upload_marks_clean_only_the_version_stored_by_the_holder() {
    let redis = TestRedis::start().await;
    let (cache, mut raw) = (redis.cache().await, redis.raw().await);
    let k = key("f");
    let v1 = cache.put(&k, "", "x/y", b"1", None).await.unwrap().version;
    let lease = UploadLease::claim(&cache, &k, TTL).await.unwrap().unwrap();
    assert_eq!(
        lease.claimed_size(),
        1,
        "the claim reads the size of the bytes"
    );
    let v2 = cache.put(&k, "", "x/y", b"2", None).await.unwrap().version;
    assert_eq!(
        cache.finish_upload(&k, &lease, v1, TTL).await.unwrap(),
        Finish::Newer
    );
    assert_eq!(
        cache.finish_upload(&k, &lease, v2, TTL).await.unwrap(),
        Finish::Clean
    );
    assert!(cache.get(&k).await.unwrap().unwrap().persisted);
    assert_eq!(cache.dirty_count().await.unwrap(), 0);
    assert_eq!(cache.stats().await.unwrap().uploads, 2);
    // Without the lease, the upload may have landed over a newer one: dirty again.
    let stranger = UploadLease::taken(&cache, &k, "someone".into(), TTL);
    assert_eq!(
        cache.finish_upload(&k, &stranger, v2, TTL).await.unwrap(),
        Finish::Lost
    );
    assert!(!cache.get(&k).await.unwrap().unwrap().persisted);
    assert_eq!(raw.ttl::<_, i64>(keys().record("f")).await.unwrap(), -1);
}

#[tokio::test]
async fn dead_letters_keep_the_key_dirty_and_out_of_the_sweep() {
    let redis = TestRedis::start().await;
    let cache = redis.cache().await;
    let (bad, lost) = (key("bad"), key("lost"));
    cache.put(&bad, "", "x/y", b"1", None).await.unwrap();
    cache.put(&lost, "", "x/y", b"1", None).await.unwrap();
    let lease = UploadLease::claim(&cache, &bad, TTL)
        .await
        .unwrap()
        .unwrap();
    cache.dead_letter(&bad, &lease, 1, "403").await.unwrap();
    let (count, letters) = cache.dead_letters(10).await.unwrap();
    assert_eq!(
        (count, letters[0].key.as_str(), letters[0].error.as_str()),
        (1, "bad", "403")
    );
    assert!(
        UploadLease::claim(&cache, &bad, TTL)
            .await
            .unwrap()
            .is_some(),
        "lease released"
    );
    assert!(!cache.get(&bad).await.unwrap().unwrap().persisted);
    // Orphans: dirty, unleased and not dead-lettered; "bad" is leased now and dead-lettered.
    let orphans = async |age, queue| cache.orphaned_dirty_keys(age, 10, queue).await.unwrap();
    assert_eq!(orphans(Duration::ZERO, QueueHealth::Down).await, ["lost"]);
    assert!(
        orphans(Duration::from_secs(60), QueueHealth::Down)
            .await
            .is_empty()
    );
    // ...and whose job is not on its way: "lost"'s still waits in the queue, until it is lost.
    assert!(
        orphans(Duration::ZERO, QueueHealth::Delivering)
            .await
            .is_empty()
    );
    let _: () = redis.raw().await.del(&keys().queue.active).await.unwrap();
    assert_eq!(
        orphans(Duration::ZERO, QueueHealth::Delivering).await,
        ["lost"]
    );
    assert!(cache.forget_dead_letter("bad").await.unwrap());
}

#[tokio::test]
async fn a_write_through_takes_the_lease_and_settles_the_cache() {
    let redis = TestRedis::start().await;
    let (cache, mut raw) = (redis.cache().await, redis.raw().await);
    let k = key("wt");
    cache.put(&k, "", "x/y", b"older", None).await.unwrap();
    let (lease, version) = cache.begin_write_through(&k, TTL).await.unwrap().unwrap();
    assert!(
        cache.begin_write_through(&k, TTL).await.unwrap().is_none(),
        "lease held"
    );
    assert_eq!(
        cache
            .finish_write_through(&k, &lease, version)
            .await
            .unwrap(),
        WriteThrough::Stored
    );
    assert!(
        cache.get(&k).await.unwrap().is_none(),
        "the older cached version is gone"
    );
    assert_eq!(cache.dirty_count().await.unwrap(), 0);
    // A write during the upload is newer: it stays, and gets a job of its own.
    let (lease, version) = cache.begin_write_through(&k, TTL).await.unwrap().unwrap();
    let newer = cache.put(&k, "", "x/y", b"newer", None).await.unwrap();
    let jobs_before: u64 = raw.llen(keys().queue.active).await.unwrap();
    assert_eq!(
        cache
            .finish_write_through(&k, &lease, version)
            .await
            .unwrap(),
        WriteThrough::Newer
    );
    assert_eq!(cache.get(&k).await.unwrap().unwrap().version, newer.version);
    assert_eq!(
        raw.llen::<_, u64>(keys().queue.active).await.unwrap(),
        jobs_before + 1
    );
    // A lease that expired mid-upload is reported.
    let stranger = UploadLease::taken(&cache, &key("other"), "x".into(), TTL);
    assert_eq!(
        cache
            .finish_write_through(&key("other"), &stranger, 1)
            .await
            .unwrap(),
        WriteThrough::Lost
    );
}
