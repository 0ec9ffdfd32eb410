-- Writes a new version of a key, as dirty, and queues its drain job if nobody drains the key
-- yet: the whole write path in one round trip. A blob (ARGV[4] = 'blob') or a delete marker
-- (ARGV[4] = 'tomb', so the delete is ordered with the writes and drained too).
-- KEYS[1] record hash, KEYS[2] version counter, KEYS[3] dirty set (member = key, score = ms
-- since the key first became dirty), KEYS[4] dead letters, KEYS[5..7] the job queue,
-- KEYS[8] the dirty keys in key order (for listing), KEYS[9] the staged bytes (see below).
-- ARGV[1] data, ARGV[2] extension, ARGV[3] key, ARGV[4] kind, ARGV[5] content type,
-- ARGV[6] id for the job, if one is needed, ARGV[7] 'staged' when the bytes are not in ARGV[1]
-- but in KEYS[9], a hash {d = bytes} the caller wrote in the same round trip.
-- Why staging: Redis hashes every byte of every string that enters Lua, so a 1 MiB ARGV costs
-- more CPU than the rest of the write; a RENAME moves the staged hash into place without the
-- bytes ever entering Lua.
-- Returns {version, 1 if a job was queued (the key was clean, absent or dead-lettered)}.
-- No allow-oom flag: when Redis is full the first write (SET) fails and nothing is written
-- (the staging HSET before the script fails the same way).
local staged = ARGV[7] == 'staged'
if staged and redis.call('EXISTS', KEYS[9]) == 0 then
  return redis.error_reply('staged blob ' .. KEYS[9] .. ' is gone')
end
local vs, now_us = next_version(KEYS[2])
if ARGV[4] == 'tomb' then
  redis.call('HSET', KEYS[1], 'k', 'tomb', 'v', vs, 's', 'dirty')
  redis.call('HDEL', KEYS[1], 'd', 'e', 'c')
elseif staged then
  redis.call('RENAME', KEYS[9], KEYS[1])
  redis.call('HSET', KEYS[1], 'k', 'blob', 'e', ARGV[2], 'c', ARGV[5], 'v', vs, 's', 'dirty')
else
  redis.call('HSET', KEYS[1], 'k', 'blob', 'd', ARGV[1], 'e', ARGV[2], 'c', ARGV[5], 'v', vs,
    's', 'dirty')
end
-- A dirty record must never expire or be evicted: it is the only copy until it is in S3.
redis.call('PERSIST', KEYS[1])
local needs_job = redis.call('ZADD', KEYS[3], 'NX', math.floor(now_us / 1000), ARGV[3])
redis.call('ZADD', KEYS[8], 0, ARGV[3])
-- A new write gives a dead-lettered key a fresh start.
if redis.call('HDEL', KEYS[4], ARGV[3]) == 1 then needs_job = 1 end
if needs_job == 1 then
  queue_job({KEYS[5], KEYS[6], KEYS[7]}, ARGV[6], ARGV[3], vs)
end
return {vs, needs_job}
