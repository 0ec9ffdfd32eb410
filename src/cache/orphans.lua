-- (Prepended in Rust with upload_lease.lua.)
-- Dirty keys that became dirty before ARGV[1] (ms), that no worker holds a lease on and that
-- are not dead-lettered: their job was lost or their worker died.
-- KEYS[1] dirty set, KEYS[2] dead letters. ARGV[1] cutoff, ARGV[2] how many to look at,
-- ARGV[3] lease key prefix.
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local orphans = {}
for _, k in ipairs(keys) do
  if not lease_holder(ARGV[3] .. k) and redis.call('HEXISTS', KEYS[2], k) == 0 then
    table.insert(orphans, k)
  end
end
return orphans
