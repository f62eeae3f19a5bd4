-- Announce a connection for presence (its first sync). KEYS: joined, online, presence, conns,
-- leaving, modes. ARGV: cid, uid, entry json. Returns {1, ''} when this is the user's first
-- announced connection, {2, held entry} when it is but the user's leave is still held (a reconnect
-- within the grace: peers never saw them go; their entry is kept as peers last saw it, and the
-- connection takes its status as its mode until it says its own), {0, ''} when it is not their
-- first, {-1, ''} when the connection is not registered.
if redis.call('HEXISTS', KEYS[4], ARGV[1]) == 0 then return {-1, ''} end
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return {0, ''} end
local n = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
if n == 1 or redis.call('HEXISTS', KEYS[3], ARGV[2]) == 0 then
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
end
if n ~= 1 then return {0, ''} end
local held = redis.call('HGET', KEYS[5], ARGV[2])
if held then
  redis.call('HDEL', KEYS[5], ARGV[2])
  local entry = cjson.decode(held)
  entry['held_ms'] = nil
  entry['last_seen_ms'] = cjson.decode(ARGV[3])['last_seen_ms']
  redis.call('HSET', KEYS[3], ARGV[2], cjson.encode(entry))
  if entry['status'] == 'away' then redis.call('HSET', KEYS[6], ARGV[1], 'away') end
  return {2, held}
end
return {1, ''}
