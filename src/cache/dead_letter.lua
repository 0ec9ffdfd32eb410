-- (Run with the allow-oom flag, prepended in Rust with upload_lease.lua.)
-- Parks a key the worker gave up on: it stays dirty in the cache (never lost), and the sweep
-- skips it until `replay-dead-letters` or a new write of the key.
-- KEYS[1] dead letters hash, KEYS[2] lease. ARGV[1] key, ARGV[2] JSON record, ARGV[3] token.
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if lease_holder(KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
