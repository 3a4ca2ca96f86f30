-- Push events onto the capped queue, atomically with the cap check and the counters.
-- KEYS[1] queue list, KEYS[2] totals hash
-- ARGV[1] cap, ARGV[2] policy ("direct" | "drop"), ARGV[3..] entries, oldest first
-- Returns how many entries were queued; the rest did not fit. Under "drop" they are counted as
-- dropped here; under "direct" the caller writes them through and counts them as overflow.
local cap = tonumber(ARGV[1])
local room = cap - redis.call("LLEN", KEYS[1])
local total = #ARGV - 2
local accepted = math.max(0, math.min(room, total))
for i = 3, 2 + accepted do
  redis.call("LPUSH", KEYS[1], ARGV[i])
end
if accepted > 0 then
  redis.call("HINCRBY", KEYS[2], "enqueued", accepted)
end
if accepted < total and ARGV[2] == "drop" then
  redis.call("HINCRBY", KEYS[2], "dropped", total - accepted)
end
return accepted
