-- Claims, renews or releases a key's upload lease (op: 'claim' | 'renew' | 'release').
-- allow-oom: the worker must be able to drain (and so free memory) when Redis is full.
-- Returns 1 when the caller holds (or, for release, held) the lease, else 0; a claim returns
-- the size of the record's bytes + 1 when taken (the drain budgets memory by it before it
-- reads them), else 0.
local holder = lease_holder(lease)
if op == 'claim' then
  if holder then return 0 end
  lease_take(lease, token, ttl_ms)
  return redis.call('HSTRLEN', record, DATA) + 1
end
if holder ~= token then return 0 end
if op == 'release' then
  redis.call('DEL', lease)
else
  lease_take(lease, token, ttl_ms)
end
return 1
