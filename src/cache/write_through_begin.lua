-- (Run with the allow-oom flag, prepended in Rust with next_version.lua and
-- upload_lease.lua.)
-- Starts a write-through (a large blob that goes straight to S3, not through the cache): takes
-- the key's upload lease, so no worker uploads an older cached version of the key while ours
-- is in flight, and hands out the version. allow-oom: this stores no blob bytes in Redis, so a
-- full Redis must not stop large writes.
-- KEYS[1] lease, KEYS[2] version counter. ARGV[1] token, ARGV[2] lease ttl in ms.
-- Returns the version as a string, or false when another writer or worker holds the lease.
if lease_holder(KEYS[1]) then return false end
local vs = next_version(KEYS[2])
lease_take(KEYS[1], ARGV[1], ARGV[2])
return vs
