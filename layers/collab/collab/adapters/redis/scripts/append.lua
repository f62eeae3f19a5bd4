-- Append an event to a workspace's history (ordered by seq, whatever order commits arrive in),
-- keep the latest ARGV[3], and return the fan-out targets: the announced connections.
-- KEYS: history, joined. ARGV: seq, event json, keep.
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
return redis.call('SMEMBERS', KEYS[2])
