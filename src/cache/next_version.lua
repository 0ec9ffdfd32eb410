-- Hands out the next version: Redis time in microseconds, so versions keep growing after a
-- restart or a flush; the counter (KEYS-given `counter`) only breaks ties within one
-- microsecond. Prepended to every script that writes a version (PUT, write-through), so both
-- paths order their writes on one scale. The SET is the script's first write: when Redis is
-- full (and the script has no allow-oom flag) it fails here, before anything else changed.
-- Returns the version as a string, and Redis time in microseconds.
local function next_version(counter)
  local t = redis.call('TIME')
  local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = tonumber(redis.call('GET', counter) or '0')
  local v = now_us
  if v <= last then v = last + 1 end
  local vs = string.format('%d', v)
  redis.call('SET', counter, vs)
  return vs, now_us
end
