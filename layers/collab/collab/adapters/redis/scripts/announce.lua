-- Announce a connection for presence (its first sync). KEYS: joined, online, presence, conns.
-- ARGV: cid, uid, entry json. Returns 1 when this is the user's first announced connection,
-- 0 when it is not, -1 when the connection is not registered.
if redis.call('HEXISTS', KEYS[4], ARGV[1]) == 0 then return -1 end
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
if n == 1 or redis.call('HEXISTS', KEYS[3], ARGV[2]) == 0 then
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
end
if n == 1 then return 1 end
return 0
