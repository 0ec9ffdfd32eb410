-- apalis-redis 1.0.0's lua/register_worker.lua (sha1 0d5fbce91e1dcff1121ece41f7169da3c0e39194)
-- without its line that records the queue in the global key core:apalis:queues:list (for
-- apalis's dashboards): on a Redis Cluster that key is in another slot, mostly on another
-- master, and Redis refuses the whole script. Run instead of it by queue/cluster_conn.rs.
-- KEYS[1]: the active workers set
-- KEYS[2]: worker metadata_key
-- ARGV[1]: current time
-- ARGV[2]: worker name
-- ARGV[3]: threshold
-- ARGV[4]: backend_name
-- ARGV[5]: service
local now = tonumber(ARGV[1])
local worker_name = ARGV[2]
local threshold = tonumber(ARGV[3])
local backend_name = ARGV[4]
local service = ARGV[5]
local worker_metadata_key = KEYS[2]

local last_seen = redis.call("zscore", KEYS[1], worker_name)
if last_seen then
    if now - tonumber(last_seen) < threshold then
        error("worker is still active within threshold")
    end
end

-- Update the active workers sorted set
redis.call("zadd", KEYS[1], now, worker_name)


-- Store or update worker metadata
redis.call("hmset", worker_metadata_key, "backend_name", backend_name, "service", service)

return true
