-- Return batches to the tail of the queue, in their original order, so they are claimed next.
-- KEYS[1] queue list, KEYS[2] in-flight zset; ARGV[1] key prefix of batch lists,
-- ARGV[2] "due" to return every batch whose deadline (ARGV[3], ms) has passed, or "ids" to return
-- the batches named in ARGV[3..]. Returns the number of events returned.
local ids
if ARGV[2] == "due" then
  ids = redis.call("ZRANGEBYSCORE", KEYS[2], "-inf", ARGV[3], "LIMIT", 0, 100)
elseif ARGV[2] == "ids" then
  ids = {}
  for i = 3, #ARGV do
    ids[#ids + 1] = ARGV[i]
  end
else
  return redis.error_reply("requeue: mode must be 'due' or 'ids'")
end
local returned = 0
for _, id in ipairs(ids) do
  local batch_key = ARGV[1] .. id
  local items = redis.call("LRANGE", batch_key, 0, -1)
  for i = #items, 1, -1 do
    redis.call("RPUSH", KEYS[1], items[i])
  end
  returned = returned + #items
  redis.call("DEL", batch_key)
  redis.call("ZREM", KEYS[2], id)
end
return returned
