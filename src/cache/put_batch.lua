-- Writes several new versions at once (group commit: the small writes a replica received while
-- its previous call to Redis was in flight), each exactly as put.lua writes one blob or delete
-- marker, and queues ONE drain job for the keys of the batch nobody drains yet. One script
-- call, one AOF append, one reply for the whole batch.
-- KEYS[1] version counter, KEYS[2] dirty set, KEYS[3] dead letters, KEYS[4..6] the job queue,
-- KEYS[7] the dirty keys in key order, KEYS[8..] one record hash per write.
-- ARGV[1] id for the job, if one is needed; then five per write: data, extension, key, kind
-- ('blob' or 'tomb'), content type.
-- Returns {version of each write..., 1 or 0 per write: a job was queued for its key}.
-- No allow-oom flag: when Redis is full the first write (SET) fails and nothing is written.
local n = #KEYS - 7
local first, now_us = next_versions(KEYS[1], n)
local now_ms = math.floor(now_us / 1000)
-- Dead letters are rare: look them up per write only when there are some.
local any_dead = redis.call('HLEN', KEYS[3]) > 0
local versions, queued, job_keys = {}, {}, {}
for i = 1, n do
  local record, a = KEYS[7 + i], 1 + (i - 1) * 5
  local key, kind = ARGV[a + 3], ARGV[a + 4]
  local vs = string.format('%d', first + i - 1)
  -- HSET answers how many fields it added: all of them only for a record that did not exist,
  -- which has no TTL and no old fields, so it needs neither PERSIST nor HDEL.
  local existed
  if kind == 'tomb' then
    existed = redis.call('HSET', record, 'k', 'tomb', 'v', vs, 's', 'dirty') < 3
    if existed then redis.call('HDEL', record, 'd', 'e', 'c') end
  else
    existed = redis.call('HSET', record, 'k', 'blob', 'd', ARGV[a + 1], 'e', ARGV[a + 2],
      'c', ARGV[a + 5], 'v', vs, 's', 'dirty') < 6
  end
  -- A dirty record must never expire or be evicted: it is the only copy until it is in S3.
  if existed then redis.call('PERSIST', record) end
  local needs_job = redis.call('ZADD', KEYS[2], 'NX', now_ms, key)
  redis.call('ZADD', KEYS[7], 0, key)
  -- A new write gives a dead-lettered key a fresh start.
  if any_dead and redis.call('HDEL', KEYS[3], key) == 1 then needs_job = 1 end
  if needs_job == 1 then job_keys[#job_keys + 1] = key end
  versions[i] = vs
  queued[i] = needs_job
end
if #job_keys > 0 then
  queue_keys_job({KEYS[4], KEYS[5], KEYS[6]}, ARGV[1], job_keys, string.format('%d', first))
end
for i = 1, n do versions[n + i] = queued[i] end
return versions
