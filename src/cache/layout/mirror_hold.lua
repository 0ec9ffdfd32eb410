-- A back-fill takes `key`'s copier lease for one mirror for ttl_ms, so no copier writes the
-- key there while it copies the key's versions. Returns 1, or 0 while a copier holds it.
local holder = lease_holder(lease)
if holder and holder ~= token then return 0 end
lease_take(lease, token, ttl_ms)
return 1
