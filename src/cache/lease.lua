-- Renews or releases an upload lease, only if the caller still holds it.
-- KEYS[1] lease. ARGV[1] token, ARGV[2] new ttl in ms, or 0 to release.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
