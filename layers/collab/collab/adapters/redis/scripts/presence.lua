-- Presence update from one connection (after remove_connection.lua): its status is the connection's
-- mode, and moves its deadline; the user's status follows all their connections, viewing is theirs.
-- KEYS as remove_connections.lua. ARGV: cid, status, viewing (json), now_ms, deadline_ms.
-- Returns {entry json or false when the user is not online, 1 when the entry changed else 0}.
local uid = redis.call('HGET', KEYS[1], ARGV[1])
if not uid or redis.call('HEXISTS', KEYS[4], uid) == 0 then return {false, 0} end
redis.call('ZADD', KEYS[2], 'XX', ARGV[5], ARGV[1])
if ARGV[2] == 'away' then
  redis.call('HSET', KEYS[6], ARGV[1], 'away')
else
  redis.call('HDEL', KEYS[6], ARGV[1])
end
local raw = redis.call('HGET', KEYS[5], uid)
local entry = raw and cjson.decode(raw) or {}
local before_status, before_viewing = entry['status'], cjson.encode(entry['viewing'] or cjson.null)
entry['status'] = user_status(uid) or ARGV[2]
entry['viewing'] = cjson.decode(ARGV[3])
entry['last_seen_ms'] = tonumber(ARGV[4])
local out = cjson.encode(entry)
redis.call('HSET', KEYS[5], uid, out)
local changed = 0
if before_status ~= entry['status'] or before_viewing ~= ARGV[3] then changed = 1 end
return {out, changed}
