-- A copier claims `key` for one mirror: takes the key's lease for ttl_ms unless another copier
-- holds it. Returns the version the mirror is owed (the copier copies the primary store's
-- object, which is at least that new), or false: held by another copier (the key is then due
-- again when that lease ends, not at once), or owed nothing.
local holder = lease_holder(lease)
if holder and holder ~= token then
  redis.call('ZADD', due, 'XX', lease_now_ms() + tonumber(ttl_ms), key)
  return false
end
local wanted = redis.call('HGET', want, key)
if not wanted then
  redis.call('ZREM', due, key)
  redis.call('ZREM', behind, key)
  return false
end
lease_take(lease, token, ttl_ms)
return wanted
