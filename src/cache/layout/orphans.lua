-- Of the dirty keys the caller found dirty for too long (one lease in KEYS and one key in ARGV
-- each, from FIRST_MORE_KEY and FIRST_MORE_ARG), those no worker holds a lease on, that are
-- not dead letters and not waiting for a retry (the sweep drains those when due): their job
-- was lost or their worker died.
local orphans = {}
for i = 0, #KEYS - FIRST_MORE_KEY do
  local key = ARGV[FIRST_MORE_ARG + i]
  if not lease_holder(KEYS[FIRST_MORE_KEY + i]) and redis.call('HEXISTS', dead, key) == 0
      and not redis.call('ZSCORE', retry, key) then
    table.insert(orphans, key)
  end
end
return orphans
