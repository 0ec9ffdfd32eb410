-- Dirty keys that became dirty before ARGV[1] (ms) and that no worker holds a lease on.
-- KEYS[1] dirty set. ARGV[1] cutoff, ARGV[2] how many to look at, ARGV[3] lease prefix.
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local orphans = {}
for _, k in ipairs(keys) do
  if redis.call('EXISTS', ARGV[3] .. k) == 0 then table.insert(orphans, k) end
end
return orphans
