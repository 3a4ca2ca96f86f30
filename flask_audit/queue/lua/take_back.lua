-- Take back the newest entries of a push that took the queue past its cap, and count them.
-- The push itself is a plain LPUSH (no script on the request path); its reply, the list's new
-- length, tells the producer how far past the cap it went, and only then is this run.
-- KEYS[1] queue list, KEYS[2] totals hash, KEYS[3] the current 10-second metrics bucket
-- ARGV[1] policy ("direct" | "drop"), ARGV[2] bucket TTL (s), ARGV[3..] the entries to take
-- back, oldest first
-- An entry no longer in the list was claimed by a drain meanwhile (claims take the oldest first,
-- so only the oldest of these can be gone): it stays queued. Returns how many were taken back.
-- Under "drop" they are counted as dropped here; under "direct" the caller writes them through
-- and counts them as overflow.
local taken = 0
for i = 3, #ARGV do
  -- from the head, where the push put them: a few steps, unless the entry is gone
  taken = taken + redis.call("LREM", KEYS[1], 1, ARGV[i])
end
if taken > 0 then
  redis.call("HINCRBY", KEYS[2], "enqueued", -taken)
  if ARGV[1] == "drop" then
    redis.call("HINCRBY", KEYS[2], "dropped", taken)
    redis.call("HINCRBY", KEYS[3], "dropped", taken)
    redis.call("EXPIRE", KEYS[3], ARGV[2])
  end
end
return taken
