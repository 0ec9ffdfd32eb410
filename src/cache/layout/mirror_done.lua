-- A copier copied the primary store's `key` to one mirror, after claiming it owed `version`.
-- If the mirror is owed nothing newer meanwhile, the key is caught up there; else it stays
-- due, to be copied again. A copier that lost its lease (stalled past it) may have written
-- over a newer copy: the key is made due again at once. Releases the lease.
-- Returns 1 when the key is caught up, 0 when it is copied again.
local ours = lease_holder(lease) == token
if ours then redis.call('DEL', lease) end
if ours and redis.call('HGET', want, key) == version then
  redis.call('HDEL', want, key)
  redis.call('HDEL', errors, key)
  redis.call('ZREM', behind, key)
  redis.call('ZREM', due, key)
  return 1
end
redis.call('ZADD', due, 0, key)
return 0
