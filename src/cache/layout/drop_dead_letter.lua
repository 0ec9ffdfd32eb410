-- Drops a dead-lettered key from the cache once an operator moved its blob under another key:
-- the record, its place in both dirty sets, the dead letter and any failures. Only if the
-- record is still at `version` (the one the operator moved) and the key is a dead letter.
-- allow-oom: it frees memory.
-- Returns 1 if dropped, else 0.
if redis.call('HEXISTS', dead, key) == 0 then return 0 end
if redis.call('HGET', record, VERSION) ~= version then return 0 end
redis.call('DEL', record)
redis.call('ZREM', dirty, key)
redis.call('ZREM', dirty_by_key, key)
redis.call('HDEL', dead, key)
forget_failures(retry, failing, failures, key)
return 1
