-- Upload leases keep their deadline in the value ('<token> <deadline ms>'), not in a TTL: a key
-- with a TTL is one a volatile-* maxmemory policy may evict, and on a full Redis it would evict
-- the leases of the very workers whose uploads free memory, so no upload could ever finish.
-- A lease past its deadline counts as absent, exactly as an expired key would.
-- Prepended to every script that reads or takes a lease.
local function lease_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The token that holds the lease, or false. Deletes a lease past its deadline.
local function lease_holder(lease)
  local value = redis.call('GET', lease)
  if not value then return false end
  local token, deadline = string.match(value, '^(.*) (%d+)$')
  if token and tonumber(deadline) > lease_now_ms() then return token end
  redis.call('DEL', lease)
  return false
end

-- Takes (or extends) the lease for ttl_ms from now.
local function lease_take(lease, token, ttl_ms)
  local deadline = lease_now_ms() + tonumber(ttl_ms)
  redis.call('SET', lease, token .. ' ' .. string.format('%d', deadline))
end
