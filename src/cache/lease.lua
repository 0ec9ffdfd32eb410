-- (Run with the allow-oom flag, prepended in Rust with upload_lease.lua.)
-- Claims, renews or releases a key's upload lease. allow-oom: the worker must be able to
-- drain (and so free memory) when Redis is full.
-- KEYS[1] lease, KEYS[2] the key's record. ARGV[1] token, ARGV[2] 'claim' | 'renew' |
-- 'release', ARGV[3] ttl in ms.
-- Returns 1 when the caller holds (or, for release, held) the lease, else 0; a claim returns
-- the size of the record's bytes + 1 when taken (the drain budgets memory by it before it
-- reads them), else 0.
local holder = lease_holder(KEYS[1])
if ARGV[2] == 'claim' then
  if holder then return 0 end
  lease_take(KEYS[1], ARGV[1], ARGV[3])
  return redis.call('HSTRLEN', KEYS[2], 'd') + 1
end
if holder ~= ARGV[1] then return 0 end
if ARGV[2] == 'release' then
  redis.call('DEL', KEYS[1])
else
  lease_take(KEYS[1], ARGV[1], ARGV[3])
end
return 1
