-- (Run with the allow-oom flag, as it frees memory, and with queue_job.lua, upload_lease.lua and
-- mark_dirty.lua prepended in Rust.)
-- Ends a write-through whose object S3 now holds at version ARGV[2], and releases the lease.
-- KEYS[1] record hash, KEYS[2] lease, KEYS[3] dirty set, KEYS[4] dirty keys in key order,
-- KEYS[5] dead letters, KEYS[6..8] the job queue.
-- ARGV[1] token, ARGV[2] version, ARGV[3] key, ARGV[4] id for a job, if one is needed.
-- A cached record older than ours is dropped (S3 has something newer; reads go there); a
-- newer one (written while we uploaded) stays, and if it is dirty it gets a drain job: the
-- workers skipped the key while we held its lease.
-- Returns 'stored', 'newer' or 'lost' (the lease expired during the upload).
local holder = lease_holder(KEYS[2])
local ours = holder == ARGV[1]
if ours then redis.call('DEL', KEYS[2]) end
local current = redis.call('HGET', KEYS[1], 'v')
if current and tonumber(current) > tonumber(ARGV[2]) then
  if not ours then
    -- Our object may have landed over the newer one a worker stored meanwhile: store it again.
    mark_dirty(KEYS[1], KEYS[3], KEYS[4], ARGV[3])
  end
  if redis.call('HGET', KEYS[1], 's') == 'dirty' then
    queue_job({KEYS[6], KEYS[7], KEYS[8]}, ARGV[4], ARGV[3], current)
  end
  return 'newer'
end
if not ours then return 'lost' end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[3])
redis.call('HDEL', KEYS[5], ARGV[3])
return 'stored'
