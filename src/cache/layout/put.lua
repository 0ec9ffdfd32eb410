-- Writes a new version of a key, as dirty, and queues its drain job if nobody drains the key
-- yet: the whole write path in one round trip. A blob (kind BLOB) or a delete marker (kind
-- TOMB, so the delete is ordered with the writes and drained too).
-- `dirty` scores each key by the ms since it first became dirty; `job_id` names the job, if
-- one is needed. When `staged`, the bytes are not in `data` but in `stage`, a hash
-- {DATA = bytes} the caller wrote in the same round trip.
-- Why staging: Redis hashes every byte of every string that enters Lua, so a 1 MiB ARGV costs
-- more CPU than the rest of the write; a RENAME moves the staged hash into place without the
-- bytes ever entering Lua.
-- A write that names its request (see requests.lua) and repeats it is answered as before.
-- `trace`: the write's traceparent, kept in the record's TRACE for the drain to link to; `-`
-- clears an earlier write's (traced process, write not sampled); empty leaves TRACE alone
-- (tracing off: no command at all).
-- Returns {version, QUEUED (a job was queued: the key was clean, absent or dead-lettered) or
-- DRAINING (the key's drain will take this version)}, or requests.lua's earlier answer.
-- No allow-oom flag: when Redis is full the first write (SET) fails and nothing is written
-- (the staging HSET before the script fails the same way).
local is_staged = staged == '1'
if is_staged and redis.call('EXISTS', stage) == 0 then
  return redis.error_reply('staged blob ' .. stage .. ' is gone')
end
local earlier = earlier_answer(request, fingerprint)
if earlier then
  if is_staged then redis.call('DEL', stage) end
  return earlier
end
local vs, now_us = next_version(version_counter)
if kind == TOMB then
  redis.call('HSET', record, KIND, TOMB, VERSION, vs, STATE, DIRTY)
  redis.call('HDEL', record, DATA, EXTENSION, CONTENT_TYPE)
elseif is_staged then
  redis.call('RENAME', stage, record)
  redis.call('HSET', record, KIND, BLOB, EXTENSION, extension, CONTENT_TYPE, content_type,
    VERSION, vs, STATE, DIRTY)
else
  redis.call('HSET', record, KIND, BLOB, DATA, data, EXTENSION, extension, CONTENT_TYPE,
    content_type, VERSION, vs, STATE, DIRTY)
end
record_trace(record, trace)
-- A dirty record must never expire or be evicted: it is the only copy until it is in S3.
redis.call('PERSIST', record)
local needs_job = redis.call('ZADD', dirty, 'NX', math.floor(now_us / 1000), key)
redis.call('ZADD', dirty_by_key, 0, key)
-- A new write gives a dead-lettered key a fresh start.
if redis.call('HDEL', dead, key) == 1 then needs_job = 1 end
-- A new version of a key S3 has been failing for gets its next turn now (the sweep takes it
-- within seconds), not after the key's backoff: S3 may take it again, and a `wc=1` write
-- waits for it.
if needs_job == 0 then redis.call('ZADD', retry, 'XX', 'LT', math.floor(now_us / 1000), key) end
remember_answer(request, fingerprint, vs, window_secs)
if needs_job == 1 then
  queue_job({queue_data, queue_meta, queue_active}, job_id, key, vs)
  return {vs, QUEUED}
end
return {vs, DRAINING}
