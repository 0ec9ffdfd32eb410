-- Of the dirty keys the caller found dirty for too long (one lease in KEYS and one key in ARGV
-- each, from FIRST_MORE_KEY and FIRST_MORE_ARG), those no worker holds a lease on and that are
-- not dead letters: their job was lost or their worker died.
local orphans = {}
for i = 0, #KEYS - FIRST_MORE_KEY do
  local key = ARGV[FIRST_MORE_ARG + i]
  if not lease_holder(KEYS[FIRST_MORE_KEY + i]) and redis.call('HEXISTS', dead, key) == 0 then
    table.insert(orphans, key)
  end
end
return orphans
