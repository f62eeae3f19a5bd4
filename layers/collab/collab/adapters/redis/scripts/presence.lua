-- Presence update of one user (keeps last_seen). KEYS: presence, online. ARGV: uid, status, viewing
-- (json), now_ms. Returns the entry json, or false when the user is not online.
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return false end
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local entry = raw and cjson.decode(raw) or {}
entry['status'] = ARGV[2]
entry['viewing'] = cjson.decode(ARGV[3])
entry['last_seen_ms'] = tonumber(ARGV[4])
local out = cjson.encode(entry)
redis.call('HSET', KEYS[1], ARGV[1], out)
return out
