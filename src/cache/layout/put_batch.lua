-- Writes several new versions at once (group commit: the small writes a replica received while
-- its previous call to Redis was in flight), each exactly as put.lua writes one blob or delete
-- marker, and queues ONE drain job for the keys of the batch nobody drains yet. One script
-- call, one AOF append, one reply for the whole batch.
-- Per write, from FIRST_MORE_KEY, two KEYS: its record hash and its request's key; from
-- FIRST_MORE_ARG, seven ARGV: data, extension, key, kind (BLOB or TOMB), content type, the
-- request's fingerprint (see requests.lua; a repeat is answered as before, not written), its
-- trace (as put.lua's).
-- Returns {version of each write..., per write: QUEUED (a job was queued for its key),
-- DRAINING, or requests.lua's answer (REPEATED, or REUSED with an empty version)}.
-- No allow-oom flag: when Redis is full the first write (SET) fails and nothing is written.
local n = (#KEYS - FIRST_MORE_KEY + 1) / 2
local first, now_us = next_versions(version_counter, n)
local now_ms = math.floor(now_us / 1000)
-- Dead letters are rare: look them up per write only when there are some.
local any_dead = redis.call('HLEN', dead) > 0
-- Keys S3 has been failing for get their next turn now, as in put.lua.
local any_failing = redis.call('ZCARD', retry) > 0
local versions, outcomes, job_keys = {}, {}, {}
for i = 1, n do
  local k, a = FIRST_MORE_KEY + (i - 1) * 2, FIRST_MORE_ARG + (i - 1) * 7
  local record, request = KEYS[k], KEYS[k + 1]
  local key, kind, fingerprint = ARGV[a + 2], ARGV[a + 3], ARGV[a + 5]
  local vs = string.format('%d', first + i - 1)
  local earlier = earlier_answer(request, fingerprint)
  if earlier then
    -- Its version number goes unused: versions only have to grow.
    versions[i], outcomes[i] = earlier[1], earlier[2]
  else
    -- HSET answers how many fields it added: all of them only for a record that did not exist,
    -- which has no TTL and no old fields, so it needs neither PERSIST nor HDEL.
    local existed
    if kind == TOMB then
      existed = redis.call('HSET', record, KIND, TOMB, VERSION, vs, STATE, DIRTY) < 3
      if existed then redis.call('HDEL', record, DATA, EXTENSION, CONTENT_TYPE) end
    else
      existed = redis.call('HSET', record, KIND, BLOB, DATA, ARGV[a], EXTENSION, ARGV[a + 1],
        CONTENT_TYPE, ARGV[a + 4], VERSION, vs, STATE, DIRTY) < 6
    end
    record_trace(record, ARGV[a + 6])
    -- A dirty record must never expire or be evicted: it is the only copy until it is in S3.
    if existed then redis.call('PERSIST', record) end
    local needs_job = redis.call('ZADD', dirty, 'NX', now_ms, key)
    redis.call('ZADD', dirty_by_key, 0, key)
    -- A new write gives a dead-lettered key a fresh start.
    if any_dead and redis.call('HDEL', dead, key) == 1 then needs_job = 1 end
    if needs_job == 1 then
      job_keys[#job_keys + 1] = key
    elseif any_failing then
      redis.call('ZADD', retry, 'XX', 'LT', now_ms, key)
    end
    remember_answer(request, fingerprint, vs, window_secs)
    versions[i] = vs
    outcomes[i] = needs_job == 1 and QUEUED or DRAINING
  end
end
if #job_keys > 0 then
  queue_keys_job({queue_data, queue_meta, queue_active}, job_id, job_keys,
    string.format('%d', first))
end
for i = 1, n do versions[n + i] = outcomes[i] end
return versions
