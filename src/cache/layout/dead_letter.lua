-- Parks a key the worker gave up on: it stays dirty in the cache (never lost), it is no longer
-- retried on a backoff, and the sweep skips it until `replay-dead-letters` or a new write of
-- the key. Releases the lease if the caller (token) still holds it.
redis.call('HSET', dead, key, reason)
forget_failures(retry, failing, failures, key)
if lease_holder(lease) == token then redis.call('DEL', lease) end
return 1
