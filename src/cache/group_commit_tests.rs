//! Group commit against a real redis-server: what one `put_batch.lua` call writes.

use redis::AsyncCommands as _;

use super::*;
use crate::cache::REPEAT_WINDOW;
use crate::cache::layout::{ShardKeys, record};
use crate::cache::test_redis::TestRedis;
use crate::domain::BlobKey;

fn write(key: &str, kind: &'static str, data: &[u8]) -> Queued {
    Queued {
        key: key.into(),
        kind,
        extension: "txt".into(),
        content_type: "text/plain".into(),
        data: data.to_vec(),
        request: Request::of(None, &BlobKey::parse(key).unwrap(), kind, "", "", &[]),
        trace: String::new(),
    }
}

#[tokio::test]
async fn put_batch_writes_each_version_in_order_and_one_job_for_its_new_keys() {
    let redis = TestRedis::start().await;
    let (cache, mut raw) = (redis.cache().await, redis.raw().await);
    let keys = ShardKeys::single();
    let queue = &keys.queue;
    let batch = [
        write("a", record::BLOB, b"one"),
        write("b", record::BLOB, b"two"),
        write("a", record::BLOB, b"three"),
        write("c", record::TOMB, b""),
    ];
    let refs: Vec<&Queued> = batch.iter().collect();
    let written = write_all(&cache, &refs).await;
    let versions: Vec<u64> = written.iter().map(|w| w.version).collect();
    assert!(versions.windows(2).all(|v| v[0] < v[1]), "{versions:?}");
    // `a` again: already dirty from the batch's first write, so no job of its own.
    let queued: Vec<bool> = written.iter().map(|w| w.queued).collect();
    assert_eq!(queued, [true, true, false, true]);
    let a = cache
        .get(&BlobKey::parse("a").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.blob.unwrap().data.as_ref(), a.version),
        (&b"three"[..], versions[2])
    );
    let c = cache
        .get(&BlobKey::parse("c").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(c.blob.is_none() && !c.persisted);
    assert_eq!(raw.ttl::<_, i64>(keys.record("b")).await.unwrap(), -1);
    assert_eq!(raw.zcard::<_, u64>(&keys.dirty).await.unwrap(), 3);
    // One job names the batch's three new keys.
    let ids: Vec<String> = raw.lrange(&queue.active, 0, -1).await.unwrap();
    assert_eq!(ids.len(), 1);
    let job: String = raw.hget(&queue.data, &ids[0]).await.unwrap();
    let job: crate::queue::DrainJob = serde_json::from_str(&job).unwrap();
    assert_eq!(job.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
    // The next write of a key still dirty queues nothing; versions keep growing.
    let next = write_all(&cache, &[&write("b", record::BLOB, b"four")]).await;
    assert!(!next[0].queued && next[0].version > versions[3]);
}

#[tokio::test]
async fn put_batch_persists_a_cached_clean_record_and_requeues_a_dead_letter() {
    let redis = TestRedis::start().await;
    let (cache, mut raw) = (redis.cache().await, redis.raw().await);
    let keys = ShardKeys::single();
    // A clean copy cached from S3 (it expires), and a key the worker gave up on.
    let cached = crate::domain::Blob {
        data: bytes::Bytes::from_static(b"from s3"),
        extension: String::new(),
        content_type: "x/y".into(),
        version: 1,
    };
    let ttl = std::time::Duration::from_secs(60);
    assert!(cache.recache(&key("clean"), &cached, ttl).await.unwrap());
    assert!(raw.ttl::<_, i64>(keys.record("clean")).await.unwrap() > 0);
    let _: i64 = raw.hset(&keys.dead, "dead", "{}").await.unwrap();
    let _: i64 = raw.zadd(&keys.dirty, "dead", 1).await.unwrap();

    let batch = [
        write("clean", record::BLOB, b"newer"),
        write("dead", record::BLOB, b"again"),
    ];
    let refs: Vec<&Queued> = batch.iter().collect();
    let written = write_all(&cache, &refs).await;
    // The overwritten record is dirty and no longer expires; the dead letter got a job.
    assert_eq!(raw.ttl::<_, i64>(keys.record("clean")).await.unwrap(), -1);
    assert_eq!(
        cache
            .get(&key("clean"))
            .await
            .unwrap()
            .unwrap()
            .blob
            .unwrap()
            .data
            .as_ref(),
        b"newer"
    );
    assert!(written[0].queued && written[1].queued);
    assert!(!raw.hexists::<_, _, bool>(&keys.dead, "dead").await.unwrap());
    // A delete of a cached record drops its bytes and its TTL too.
    let tomb = write_all(&cache, &[&write("clean", record::TOMB, b"")]).await;
    let fields: Vec<String> = raw.hkeys(keys.record("clean")).await.unwrap();
    assert!(!fields.contains(&record::DATA.to_owned()), "{fields:?}");
    assert!(tomb[0].version > written[0].version);
}

/// What `put_batch.lua` answered for each of `writes`, all of which it must have taken.
async fn write_all(cache: &BlobCache, writes: &[&Queued]) -> Vec<Written> {
    let answers = cache.write_batch(cache.conn(), writes).await.unwrap();
    answers.into_iter().map(Result::unwrap).collect()
}

#[tokio::test]
async fn a_batch_writes_a_named_request_once_and_refuses_its_key_for_another_write() {
    let redis = TestRedis::start().await;
    let (cache, mut raw) = (redis.cache().await, redis.raw().await);
    let id = crate::domain::IdempotencyKey::parse("req-1").unwrap();
    let named = |k: &str, data: &[u8]| Queued {
        request: Request::of(Some(&id), &key(k), record::BLOB, "txt", "text/plain", data),
        ..write(k, record::BLOB, data)
    };
    // The same request twice in one batch (two replicas' resends meet), then again later.
    let first = named("r", b"once");
    let answers = cache
        .write_batch(
            cache.conn(),
            &[&first, &named("r", b"once"), &named("r", b"other")],
        )
        .await
        .unwrap();
    let (one, again) = (answers[0].as_ref().unwrap(), answers[1].as_ref().unwrap());
    assert!(!one.repeated && again.repeated && again.version == one.version);
    assert!(matches!(answers[2], Err(CacheError::RequestReused)));
    let later = write_all(&cache, &[&first]).await;
    assert!(later[0].repeated && later[0].version == one.version);
    let held = cache.get(&key("r")).await.unwrap().unwrap();
    assert_eq!(
        (held.blob.unwrap().data.as_ref(), held.version),
        (&b"once"[..], one.version)
    );
    // The answer is kept for the window, then expires.
    let keys = ShardKeys::single();
    let ttl: i64 = raw.ttl(keys.request("req-1")).await.unwrap();
    assert!(ttl > 0 && ttl <= REPEAT_WINDOW.as_secs() as i64, "{ttl}");
}

fn key(k: &str) -> BlobKey {
    BlobKey::parse(k).unwrap()
}
