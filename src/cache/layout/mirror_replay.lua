-- Gives every key one mirror refused for good another copy, due now; returns how many.
local keys = redis.call('HKEYS', dead)
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, key in ipairs(keys) do
  redis.call('ZADD', due, now_ms, key)
end
redis.call('DEL', dead)
return #keys
