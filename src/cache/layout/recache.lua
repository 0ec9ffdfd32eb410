-- Puts a blob read from S3 back in the cache as clean, unless the key has a record already
-- (possibly a newer dirty version, or a delete marker, written while S3 was being read).
if redis.call('EXISTS', record) == 1 then return 0 end
redis.call('HSET', record, KIND, BLOB, DATA, data, EXTENSION, extension, CONTENT_TYPE,
  content_type, VERSION, version, STATE, CLEAN)
redis.call('EXPIRE', record, ttl_secs)
return 1
