-- Puts a blob read from S3 back in the cache as clean, unless the key has a record already
-- (possibly a newer dirty version, or a delete marker, written while S3 was being read).
-- KEYS[1] record hash. ARGV[1] data, ARGV[2] extension, ARGV[3] version, ARGV[4] ttl seconds,
-- ARGV[5] content type.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'k', 'blob', 'd', ARGV[1], 'e', ARGV[2], 'c', ARGV[5], 'v', ARGV[3],
  's', 'clean')
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
