-- Gives a key back after S3 failed for it a few times in a row, with its next attempt due
-- after a backoff that doubles with each turn that failed (from first_ms, at most cap_ms,
-- jitter in [50%, 100%] from `jitter` in 0..1000; never sooner than the asked_ms S3 asked
-- for), and releases the lease if the caller (token) still holds it. The sweep drains the key
-- once it is due; the record stays dirty, so it is never dropped. The count and the first
-- failure's time survive the worker: a restarted worker goes on with the same backoff.
-- allow-oom: it frees a worker's slot, and draining is what frees memory.
-- Returns {attempts (turns that failed, this one included), the delay in ms}.
local info = redis.call('HGET', failures, key)
local attempts = 1
if info then attempts = cjson.decode(info).attempts + 1 end
local delay = math.min(tonumber(cap_ms), tonumber(first_ms) * 2 ^ (attempts - 1))
delay = math.floor(delay * (1000 + tonumber(jitter)) / 2000)
delay = math.max(delay, tonumber(asked_ms))
local now = lease_now_ms()
redis.call('ZADD', retry, now + delay, key)
redis.call('ZADD', failing, 'NX', now, key)
redis.call('HSET', failures, key, cjson.encode({attempts = attempts, error = error}))
if lease_holder(lease) == token then redis.call('DEL', lease) end
return {attempts, delay}
