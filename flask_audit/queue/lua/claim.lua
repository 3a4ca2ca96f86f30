-- Claim up to N of the oldest events as one batch that stays in Redis until it is settled.
-- KEYS[1] priority list, KEYS[2] queue list, KEYS[3] in-flight zset, KEYS[4] this batch's list
-- ARGV[1] N, ARGV[2] deadline (ms since epoch) after which the reaper returns the batch, ARGV[3] id
-- Returns {events still waiting after this claim, {entries, oldest first}}. The priority list
-- (critical events whose direct write failed) is drained before the queue.
local n = tonumber(ARGV[1])
local items = redis.call("RPOP", KEYS[1], n) or {}
if #items < n then
  local more = redis.call("RPOP", KEYS[2], n - #items) or {}
  for i = 1, #more do
    items[#items + 1] = more[i]
  end
end
local remaining = redis.call("LLEN", KEYS[1]) + redis.call("LLEN", KEYS[2])
if #items == 0 then
  return {remaining, items}
end
-- unpack() is limited by Lua's C stack, so large batches are copied in slices
for first = 1, #items, 1000 do
  redis.call("RPUSH", KEYS[4], unpack(items, first, math.min(first + 999, #items)))
end
redis.call("ZADD", KEYS[3], ARGV[2], ARGV[3])
return {remaining, items}
