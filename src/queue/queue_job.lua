-- Queues a drain job the way apalis-redis 1.0.0 stores one (its batch_push.lua), except that
-- the job goes straight onto the active list instead of the scheduled set: apalis moves due
-- scheduled jobs with one `unpack`, which fails once more than ~8000 are due at once, so a
-- large backlog would wedge the queue. Prepended to the scripts that queue jobs. The format
-- is apalis's, pinned by the exact apalis-redis version in Cargo.toml and held to it by
-- tests/api/queue_contract.rs (against apalis's own push and worker).
-- Unlike batch_push.lua it does not DEL + LPUSH the queue's signal list: apalis-redis 1.0.0
-- writes that list but never reads it (workers find jobs by polling): two writes per job,
-- for nothing.
-- q = {data hash, meta prefix, active list}; job: the job's JSON.
local function queue_job_json(q, job_id, job)
  redis.call('HSET', q[1], job_id, job)
  -- apalis-redis's defaults for a pushed job (25 attempts, as its handle_results assumes).
  redis.call('HSET', q[2] .. ':' .. job_id, 'attempts', 0, 'max_attempts', 25,
    'status', 'Pending', 'idempotency_key', '')
  redis.call('RPUSH', q[3], job_id)
end

-- One drain job for one key; key, version: strings.
local function queue_job(q, job_id, key, version)
  queue_job_json(q, job_id, '{"key":' .. cjson.encode(key) .. ',"version":' .. version .. '}')
end

-- One drain job for several keys (a group-committed batch of writes): the first key in `key`,
-- the others in `more`. keys: a Lua list of strings, at least one.
local function queue_keys_job(q, job_id, keys, version)
  if #keys == 1 then return queue_job(q, job_id, keys[1], version) end
  local more = {}
  for i = 2, #keys do more[#more + 1] = cjson.encode(keys[i]) end
  queue_job_json(q, job_id, '{"key":' .. cjson.encode(keys[1]) .. ',"version":' .. version ..
    ',"more":[' .. table.concat(more, ',') .. ']}')
end
