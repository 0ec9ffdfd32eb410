-- Idempotency: a write may name the request it comes from (`Idempotency-Key`; nginx sends its
-- own request id there, the same on every replica it tries). The first write of a request
-- records `<fingerprint> <version>` under the request's key for a while (`window_secs`); a
-- repeat within that time (nginx resending a PUT or DELETE whose replica died before it
-- answered, a client's retry) is answered with that version instead of being written again.
-- The fingerprint hashes the key and what is written, so a request key reused for another
-- write is told apart and refused. An empty fingerprint: the write names no request.
-- Prepended to the scripts that write versions.

-- {version, REPEATED} or {'', REUSED} when the request has been written before, else nil.
local function earlier_answer(request, fingerprint)
  if fingerprint == '' then return nil end
  local seen = redis.call('GET', request)
  if not seen then return nil end
  local was, version = string.match(seen, '^(%S+) (%d+)$')
  if was == fingerprint then return {version, REPEATED} end
  return {'', REUSED}
end

local function remember_answer(request, fingerprint, version, window_secs)
  if fingerprint ~= '' then
    redis.call('SET', request, fingerprint .. ' ' .. version, 'EX', window_secs)
  end
end
