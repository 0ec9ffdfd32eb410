-- A copy of `key` to one mirror failed: its next try is due after first_ms, doubled with each
-- attempt up to cap_ms; `message` is kept for /status, and the lease is released.
-- Returns the number of attempts so far.
if lease_holder(lease) == token then redis.call('DEL', lease) end
local last = redis.call('HGET', errors, key)
local attempts = 1
if last then attempts = tonumber(string.match(last, '^(%d+) ')) + 1 end
redis.call('HSET', errors, key, string.format('%d', attempts) .. ' ' .. message)
local delay = math.min(tonumber(first_ms) * 2 ^ math.min(attempts - 1, 30), tonumber(cap_ms))
redis.call('ZADD', due, 'XX', lease_now_ms() + math.floor(delay), key)
return attempts
