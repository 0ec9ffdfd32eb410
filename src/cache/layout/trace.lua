-- A write's trace: the W3C traceparent of the span that wrote a version, kept in the record's
-- TRACE field so that the drain uploading that version links its span to the write's. `-`
-- (a traced process, a write not sampled) clears an earlier write's; an empty value (tracing
-- off) costs no command. Prepended to the scripts that write versions.
local function record_trace(record, trace)
  if trace == '' then return end
  if trace == '-' then
    redis.call('HDEL', record, TRACE)
  else
    redis.call('HSET', record, TRACE, trace)
  end
end
