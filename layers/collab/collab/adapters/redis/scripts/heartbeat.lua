-- Heartbeat (after remove_connection.lua): refresh this connection, update the user's last_seen,
-- and remove peers whose last heartbeat is older than the cutoff (at most ARGV[4] of them).
-- KEYS as remove_connections.lua. ARGV: cid, now_ms, cutoff_ms, limit.
-- Returns {alive(0/1), cid, uid, left, ...}.
local alive = 0
local uid = redis.call('HGET', KEYS[1], ARGV[1])
if uid then
  alive = 1
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  local raw = redis.call('HGET', KEYS[5], uid)
  if raw then
    local entry = cjson.decode(raw)
    entry['last_seen_ms'] = tonumber(ARGV[2])
    redis.call('HSET', KEYS[5], uid, cjson.encode(entry))
  end
end
local out = {alive}
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
for _, cid in ipairs(stale) do
  local r = remove(cid)
  if r then out[#out+1] = r[1]; out[#out+1] = r[2]; out[#out+1] = r[3] end
end
return out
