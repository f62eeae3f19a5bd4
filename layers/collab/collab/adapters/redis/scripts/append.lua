-- Append an event to a workspace's history (ordered by seq, whatever order commits arrive in),
-- keep the latest ARGV[3], and return the fan-out targets: the announced connections.
-- Bounded in bytes too: an event larger than ARGV[4] bytes is not kept (sync replays it from the
-- Postgres activity log, as any hole), so a history holds at most keep x ARGV[4] bytes; an idle
-- workspace's history expires after ARGV[5] ms.
-- KEYS: history, joined. ARGV: seq, event json, keep, max event bytes, ttl ms.
if #ARGV[2] <= tonumber(ARGV[4] or '4096') then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5] or '86400000'))
end
return redis.call('SMEMBERS', KEYS[2])
