-- Shared by the bench scripts: a summary line wrk's main thread prints as JSON when done.
local M = {}

function M.done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p99_us":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99),
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end

-- Deterministic pseudo-random bytes (wrk's Lua has no crypto; the content does not matter,
-- only that it is not trivially compressible).
function M.bytes(n, seed)
  local parts, x = {}, seed or 12345
  local chunk = {}
  for i = 1, 4096 do
    x = (x * 1103515245 + 12345) % 2147483648
    chunk[i] = string.char(x % 256)
  end
  local block = table.concat(chunk)
  local full = math.floor(n / 4096)
  for i = 1, full do parts[i] = block end
  parts[full + 1] = block:sub(1, n - full * 4096)
  return table.concat(parts)
end

local b64chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

function M.base64(data)
  local out = {}
  for i = 1, #data, 3 do
    local a, b, c = data:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1) ..
      (b and b64chars:sub(c3 + 1, c3 + 1) or '=') .. (c and b64chars:sub(c4 + 1, c4 + 1) or '=')
  end
  return table.concat(out)
end

return M
