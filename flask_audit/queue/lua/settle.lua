-- Acknowledge a batch: forget it, file the events the database rejected, and count, in one step
-- (the stored events by outcome too, so that no crash can leave the totals disagreeing).
-- KEYS[1] in-flight zset, KEYS[2] this batch's list, KEYS[3] failed list, KEYS[4] totals hash,
-- KEYS[5] the current 10-second metrics bucket, KEYS[6] the batch-duration histogram hash
-- ARGV[1] batch id, ARGV[2] rows inserted, ARGV[3] batch milliseconds, ARGV[4] bucket TTL (s),
-- ARGV[5] INSERT/COPY statements the batch took, ARGV[6] the histogram bucket of this batch,
-- ARGV[7] n, the number of outcomes counted, then n pairs: an outcome, its stored events,
-- then the failure records (JSON)
local inserted = tonumber(ARGV[2])
local first_failure = 8 + 2 * tonumber(ARGV[7])
local failed = #ARGV - first_failure + 1
redis.call("ZREM", KEYS[1], ARGV[1])
redis.call("DEL", KEYS[2])
for i = first_failure, #ARGV do
  redis.call("LPUSH", KEYS[3], ARGV[i])
end
redis.call("HINCRBY", KEYS[4], "inserted", inserted)
redis.call("HINCRBY", KEYS[4], "failed", failed)
redis.call("HINCRBY", KEYS[4], "batches", 1)
redis.call("HINCRBY", KEYS[4], "db_statements", ARGV[5])
for i = 8, first_failure - 1, 2 do
  redis.call("HINCRBY", KEYS[4], "outcome_" .. ARGV[i], ARGV[i + 1])
end
redis.call("HINCRBY", KEYS[5], "inserted", inserted)
redis.call("HINCRBY", KEYS[5], "failed", failed)
redis.call("HINCRBY", KEYS[5], "batches", 1)
redis.call("HINCRBYFLOAT", KEYS[5], "batch_ms", ARGV[3])
redis.call("EXPIRE", KEYS[5], ARGV[4])
redis.call("HINCRBY", KEYS[6], ARGV[6], 1)
redis.call("HINCRBY", KEYS[6], "count", 1)
redis.call("HINCRBYFLOAT", KEYS[6], "sum", tonumber(ARGV[3]) / 1000)
return inserted
