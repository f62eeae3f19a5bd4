-- Register a connection in its workspace, within the live-connection caps (each connection is a
-- fan-out target of every edit). KEYS: conns, hb. ARGV: cid, uid, deadline_ms (the sweeper's score), per_user_cap, per_ws_cap
-- (0: no cap), ttl_s. Returns 1, or 'user' / 'workspace' naming the cap that refused it.
-- The workspace's connection keys expire ttl_s after the last registration (a connection lives at
-- most 2 h), so an idle workspace leaves nothing behind even if a removal was lost.
local per_user, per_ws = tonumber(ARGV[4] or '0'), tonumber(ARGV[5] or '0')
if per_ws > 0 and redis.call('HLEN', KEYS[1]) >= per_ws then return 'workspace' end
if per_user > 0 then
  local n = 0
  for _, uid in ipairs(redis.call('HVALS', KEYS[1])) do
    if uid == ARGV[2] then n = n + 1 end
  end
  if n >= per_user then return 'user' end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local ttl = tonumber(ARGV[6] or '0')
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
end
return 1
