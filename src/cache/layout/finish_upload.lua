-- Called by the worker after it stored (or deleted) `version` of `key` in S3.
-- allow-oom: marking blobs clean is what lets a full Redis evict them again.
-- Returns CLEAN (done: the record's state), 'newer' (a newer version arrived: store again, lease kept),
-- 'gone' (the record left the cache) or 'lost' (the lease expired and another worker may have
-- stored a newer version before ours landed: the key is marked dirty again to be re-queued).
redis.call('HINCRBY', stats, UPLOADS, 1)
-- The primary store has this version (or its delete): every mirror is owed it.
mark_mirrors_behind(key, version)
local holder = lease_holder(lease)
local current = redis.call('HGET', record, VERSION)
if not current then
  if holder == token then redis.call('DEL', lease) end
  forget_failures(retry, failing, failures, key)
  redis.call('ZREM', dirty, key)
  redis.call('ZREM', dirty_by_key, key)
  return 'gone'
end
if holder ~= token then
  mark_dirty(record, dirty, dirty_by_key, key)
  return 'lost'
end
if current == version then
  -- Clean records (blobs and delete markers) get the TTL: volatile-* policies may evict them.
  redis.call('HSET', record, STATE, CLEAN)
  redis.call('EXPIRE', record, ttl_secs)
  redis.call('ZREM', dirty, key)
  redis.call('ZREM', dirty_by_key, key)
  redis.call('DEL', lease)
  forget_failures(retry, failing, failures, key)
  return CLEAN
end
return 'newer'
