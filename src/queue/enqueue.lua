-- Queues one drain job (see queue_job).
queue_job({queue_data, queue_meta, queue_active}, job_id, key, version)
return 1
