-- Hands out versions: Redis time in microseconds, so versions keep growing after a restart or a
-- flush; the counter (KEYS-given `counter`) only breaks ties within one microsecond. Prepended
-- to every script that writes a version (PUT, a group-committed batch, write-through), so all
-- paths order their writes on one scale: this is the one place the rule is written. The SET is
-- the script's first write: when Redis is full (and the script has no allow-oom flag) it fails
-- here, before anything else changed.

-- Reserves `n` consecutive versions; returns the first (the others follow it by 1) and Redis
-- time in microseconds.
local function next_versions(counter, n)
  local t = redis.call('TIME')
  local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = tonumber(redis.call('GET', counter) or '0')
  local first = now_us
  if first <= last then first = last + 1 end
  redis.call('SET', counter, string.format('%d', first + n - 1))
  return first, now_us
end

-- One version, as a string, and Redis time in microseconds.
local function next_version(counter)
  local v, now_us = next_versions(counter, 1)
  return string.format('%d', v), now_us
end
