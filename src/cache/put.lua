-- Writes a blob as dirty and gives it the next version, in one round trip.
-- KEYS[1] blob hash, KEYS[2] version counter, KEYS[3] dirty set (member = key, score = ms
-- since the blob first became dirty).
-- ARGV[1] data, ARGV[2] extension, ARGV[3] key.
-- Returns {version, 1 if the key was clean before (a drain job is needed), else 0}.
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- Versions follow Redis time so they keep growing after a restart or a flush; the counter
-- only breaks ties within one microsecond.
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local v = now_us
if v <= last then v = last + 1 end
local vs = string.format('%d', v)
redis.call('SET', KEYS[2], vs)
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'e', ARGV[2], 'v', vs, 's', 'dirty')
-- A dirty blob must never expire: it is the only copy until the worker has stored it.
redis.call('PERSIST', KEYS[1])
local newly = redis.call('ZADD', KEYS[3], 'NX', math.floor(now_us / 1000), ARGV[3])
return {vs, newly}
