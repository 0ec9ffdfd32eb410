-- One wrk script for every request shape of the benchmark, chosen by arguments:
--   wrk ... -s requests.lua URL -- MODE SIZE KEYS PREFIX [FILE]
-- MODE: get_json | get_raw | get_path | put_json | put_raw | post_json_sink | put_raw_sink
--       | presigned_get | presigned_put
-- The sink modes send to PREFIX when it is a path (/sink or /sink-read), else to /sink.
-- Requests cycle over KEYS keys (PREFIX/0 .. PREFIX/KEYS-1); each wrk thread takes every
-- n-th key so threads do not repeat each other's keys. Request strings are built once, in
-- init, so Lua string work stays out of the measurement.
package.path = package.path .. ';' .. (debug.getinfo(1, 'S').source:match('@(.*/)') or './') .. '?.lua'
local common = require('common')

local thread_count = 0
local threads = {}

function setup(thread)
  thread:set('id', thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local reqs, n, i = {}, 0, 0

function init(args)
  local mode, size, keys, prefix, file = args[1], tonumber(args[2]), tonumber(args[3]), args[4], args[5]
  local stride = 2 -- wrk -t2
  local sink = prefix:sub(1, 1) == '/' and prefix or '/sink'
  local data, b64
  if mode:match('put') or mode:match('post') then
    data = common.bytes(size, 7 + id)
    if mode:match('json') then b64 = common.base64(data) end
  end
  local lines = {}
  if file then
    for line in io.lines(file) do lines[#lines + 1] = line end
    keys = #lines
  end
  -- Large bodies: build at most 32 requests per thread and cycle (memory stays bounded).
  local build = keys
  if size and size >= 65536 and mode:match('put') then build = math.min(keys, 32) end
  if mode == 'get_path' then
    -- One fixed path (a static file): every thread sends it.
    reqs[1], n = wrk.format('GET', prefix), 1
    return
  end
  for k = id, keys - 1, stride do
    local key = prefix .. '/' .. k
    local r
    if mode == 'get_json' then
      r = wrk.format('GET', '/get/' .. key)
    elseif mode == 'get_raw' then
      r = wrk.format('GET', '/blobs/' .. key)
    elseif mode == 'presigned_get' then
      r = wrk.format('GET', lines[k + 1])
    elseif n < build then
      if mode == 'put_json' or mode == 'post_json_sink' then
        local path = mode == 'put_json' and '/put/' or sink
        r = wrk.format('POST', path, { ['Content-Type'] = 'application/json' },
          '{"key":"' .. key .. '","extension":"bin","data":"' .. b64 .. '"}')
      elseif mode == 'put_raw' then
        r = wrk.format('PUT', '/blobs/' .. key, { ['Content-Type'] = 'application/octet-stream' }, data)
      elseif mode == 'put_raw_sink' then
        r = wrk.format('PUT', sink, { ['Content-Type'] = 'application/octet-stream' }, data)
      elseif mode == 'presigned_put' then
        -- The same headers the worker sends (they are signed into the URL): S3 stores the
        -- Content-Type and metadata with the object, as it does for blobproxy's uploads.
        r = wrk.format('PUT', lines[k + 1], {
          ['Content-Type'] = 'application/octet-stream',
          ['x-amz-meta-extension'] = 'bin',
          ['x-amz-meta-version'] = '1',
        }, data)
      end
    end
    if r then
      n = n + 1
      reqs[n] = r
    end
  end
end

function request()
  i = i % n + 1
  return reqs[i]
end

done = common.done
