-- Starts a write-through (a large blob that goes straight to S3, not through the cache): takes
-- the key's upload lease, so no worker uploads an older cached version of the key while ours
-- is in flight, and hands out the version. allow-oom: this stores no blob bytes in Redis, so a
-- full Redis must not stop large writes.
-- Returns the version as a string, or false when another writer or worker holds the lease.
if lease_holder(lease) then return false end
local vs = next_version(version_counter)
lease_take(lease, token, ttl_ms)
return vs
