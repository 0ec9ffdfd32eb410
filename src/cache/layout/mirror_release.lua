-- A back-fill is done with `key`: releases its lease, and if a copier was turned away
-- meanwhile (the key is owed and waits for the lease to end), makes the key due now.
if lease_holder(lease) == token then redis.call('DEL', lease) end
if redis.call('HEXISTS', want, key) == 1 then
  redis.call('ZADD', due, 'XX', lease_now_ms(), key)
end
return 1
