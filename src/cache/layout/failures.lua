-- A key S3 failed for is in three places: `retry` (when its next attempt is due), `failing`
-- (since when it fails) and `failures` (how many attempts, the last error). Prepended to the
-- scripts that end a key's failures: it reached S3, left the cache, or went to the dead letters.
local function forget_failures(retry, failing, failures, key)
  if redis.call('ZREM', retry, key) == 1 then
    redis.call('ZREM', failing, key)
    redis.call('HDEL', failures, key)
  end
end
