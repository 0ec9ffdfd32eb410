-- (Run with the allow-oom flag, prepended in Rust with upload_lease.lua and
-- mark_dirty.lua.)
-- Called by the worker after it stored (or deleted) version ARGV[2] of a key in S3.
-- allow-oom: marking blobs clean is what lets a full Redis evict them again.
-- KEYS[1] record hash, KEYS[2] upload lease, KEYS[3] dirty set, KEYS[4] drain counters,
-- KEYS[5] the dirty keys in key order.
-- ARGV[1] lease token, ARGV[2] stored version, ARGV[3] ttl seconds, ARGV[4] key.
-- Returns 'clean' (done), 'newer' (a newer version arrived: store again, lease kept),
-- 'gone' (the record left the cache) or 'lost' (the lease expired and another worker may have
-- stored a newer version before ours landed: the key is marked dirty again to be re-queued).
redis.call('HINCRBY', KEYS[4], 'uploads', 1)
local holder = lease_holder(KEYS[2])
local current = redis.call('HGET', KEYS[1], 'v')
if not current then
  if holder == ARGV[1] then redis.call('DEL', KEYS[2]) end
  redis.call('ZREM', KEYS[3], ARGV[4])
  redis.call('ZREM', KEYS[5], ARGV[4])
  return 'gone'
end
if holder ~= ARGV[1] then
  mark_dirty(KEYS[1], KEYS[3], KEYS[5], ARGV[4])
  return 'lost'
end
if current == ARGV[2] then
  -- Clean records (blobs and delete markers) get the TTL: volatile-* policies may evict them.
  redis.call('HSET', KEYS[1], 's', 'clean')
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('ZREM', KEYS[3], ARGV[4])
  redis.call('ZREM', KEYS[5], ARGV[4])
  redis.call('DEL', KEYS[2])
  return 'clean'
end
return 'newer'
