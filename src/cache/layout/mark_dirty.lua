-- Marks a record dirty again, after an upload that may have left S3 older than the record
-- (a lease that expired mid-upload): no TTL, back in both dirty sets, so it is stored again.
-- Prepended to the scripts that need it.
local function mark_dirty(record, dirty_set, dirty_by_key, key)
  local t = redis.call('TIME')
  redis.call('HSET', record, STATE, DIRTY)
  redis.call('PERSIST', record)
  redis.call('ZADD', dirty_set, 'NX', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), key)
  redis.call('ZADD', dirty_by_key, 0, key)
end
