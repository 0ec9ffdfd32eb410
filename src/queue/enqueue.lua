-- Queues one drain job. KEYS[1..3] the queue (see queue_job). ARGV[1] job id (a ULID),
-- ARGV[2] key, ARGV[3] version.
queue_job({KEYS[1], KEYS[2], KEYS[3]}, ARGV[1], ARGV[2], ARGV[3])
return 1
