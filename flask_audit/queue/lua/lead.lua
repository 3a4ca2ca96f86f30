-- Take or keep the clock's leadership: one active clock, even when several processes run one.
-- KEYS[1] leader key; ARGV[1] this clock's token, ARGV[2] lease in milliseconds
-- Returns 1 when this clock leads (it took a free lease or renewed its own), else 0.
local holder = redis.call("GET", KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
  return 1
end
return 0
