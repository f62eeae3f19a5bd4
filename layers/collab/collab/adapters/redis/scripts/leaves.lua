-- Leaves held for the grace (a reconnect within it cancels them, see announce.lua).
-- KEYS: leaving. ARGV: 'hold', uid, entry json | 'take', due_ms.
-- 'take' removes and returns the entries held since due_ms or earlier {uid, entry, ...} and the
-- earliest hold still left (0 when none).
if ARGV[1] == 'hold' then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  return 1
end
local due = tonumber(ARGV[2])
local all = redis.call('HGETALL', KEYS[1])
local out, earliest = {}, 0
for i = 1, #all, 2 do
  local held = tonumber(cjson.decode(all[i + 1])['held_ms'] or 0)
  if held <= due then
    redis.call('HDEL', KEYS[1], all[i])
    out[#out + 1] = all[i]; out[#out + 1] = all[i + 1]
  elseif earliest == 0 or held < earliest then
    earliest = held
  end
end
return {earliest, out}
