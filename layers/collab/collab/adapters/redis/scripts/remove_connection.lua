-- The function that removes one connection from every structure of its workspace; prefixed to
-- remove_connections.lua and heartbeat.lua (Lua scripts cannot include one another).
-- KEYS: conns, hb, joined, online, presence. Returns {cid, uid, left} or nil when it was not
-- there, where left is '' or, when the user just left, their presence entry (json) as it was.
local function remove(cid)
  local uid = redis.call('HGET', KEYS[1], cid)
  redis.call('ZREM', KEYS[2], cid)
  if not uid then return nil end
  redis.call('HDEL', KEYS[1], cid)
  local left = ''
  if redis.call('SREM', KEYS[3], cid) == 1 then
    local n = redis.call('HINCRBY', KEYS[4], uid, -1)
    if n <= 0 then
      redis.call('HDEL', KEYS[4], uid)
      left = redis.call('HGET', KEYS[5], uid) or '{}'
      redis.call('HDEL', KEYS[5], uid)
    end
  end
  return {cid, uid, left}
end
