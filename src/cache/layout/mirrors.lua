-- Mirrors: every version the primary store gets is owed to each mirror. A script that has just
-- seen the primary store a version of `key` calls mark_mirrors_behind; for each mirror it
-- takes four KEYS from FIRST_MORE_KEY on: `behind` (key -> ms it fell behind, kept from the
-- first version it misses, for the lag), `due` (key -> ms its next copy is due), `want`
-- (key -> the newest version the primary got; a copier that copied while it changed copies
-- again) and `dead` (keys the mirror refused for good: a new version gets another try, as in
-- the drain). Key names and versions only: the bytes are read back from the primary store.
-- Prepended to the scripts that end an upload to the primary store.
local function mark_mirrors_behind(key, version)
  if #KEYS < FIRST_MORE_KEY then return end
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  for i = FIRST_MORE_KEY, #KEYS, 4 do
    redis.call('ZADD', KEYS[i], 'NX', now_ms, key)
    redis.call('ZADD', KEYS[i + 1], 'NX', now_ms, key)
    redis.call('HSET', KEYS[i + 2], key, version)
    redis.call('HDEL', KEYS[i + 3], key)
  end
end
