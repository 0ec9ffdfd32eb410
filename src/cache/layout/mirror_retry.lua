-- A copy of `key` to one mirror failed. A mirror that refused it for good (`permanent` = 1:
-- the key's name, its size, a policy) parks it in `dead` with the error: no longer due, still
-- behind and owed (so /status and wc=all say so) until `replay-dead-letters` or a new version.
-- Else its next try is due after first_ms, doubled with each attempt up to cap_ms, the error
-- kept in `errors` for /status. Releases the lease. Returns the number of attempts so far.
if lease_holder(lease) == token then redis.call('DEL', lease) end
local last = redis.call('HGET', errors, key)
local attempts = 1
if last then attempts = tonumber(string.match(last, '^(%d+) ')) + 1 end
local said = string.format('%d', attempts) .. ' ' .. message
if permanent == '1' then
  redis.call('HSET', dead, key, said)
  redis.call('HDEL', errors, key)
  redis.call('ZREM', due, key)
  return attempts
end
redis.call('HSET', errors, key, said)
local delay = math.min(tonumber(first_ms) * 2 ^ math.min(attempts - 1, 30), tonumber(cap_ms))
redis.call('ZADD', due, 'XX', lease_now_ms() + math.floor(delay), key)
return attempts
