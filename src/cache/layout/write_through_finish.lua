-- Ends a write-through whose object S3 now holds at `version`, and releases the lease.
-- allow-oom: it frees memory.
-- A cached record older than ours is dropped (S3 has something newer; reads go there); a
-- newer one (written while we uploaded) stays, and if it is dirty it gets a drain job: the
-- workers skipped the key while we held its lease.
-- Returns 'stored', 'newer' or 'lost' (the lease expired during the upload).
-- The primary store has this version: every mirror is owed it.
mark_mirrors_behind(key, version)
local ours = lease_holder(lease) == token
if ours then redis.call('DEL', lease) end
local current = redis.call('HGET', record, VERSION)
if current and tonumber(current) > tonumber(version) then
  if not ours then
    -- Our object may have landed over the newer one a worker stored meanwhile: store it again.
    mark_dirty(record, dirty, dirty_by_key, key)
  end
  if redis.call('HGET', record, STATE) == DIRTY then
    queue_job({queue_data, queue_meta, queue_active}, job_id, key, current)
  end
  return 'newer'
end
if not ours then return 'lost' end
redis.call('DEL', record)
redis.call('ZREM', dirty, key)
redis.call('ZREM', dirty_by_key, key)
redis.call('HDEL', dead, key)
forget_failures(retry, failing, failures, key)
return 'stored'
