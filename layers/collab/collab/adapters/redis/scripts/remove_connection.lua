-- The functions that remove one connection from every structure of its workspace and work out a
-- user's status from their connections' modes; prefixed to remove_connections.lua, heartbeat.lua and
-- presence.lua (Lua scripts cannot include one another).
-- KEYS: conns, hb, joined, online, presence, modes. A connection's mode is 'away' in modes, or absent
-- (active); hb scores each connection by its deadline (ms): the time after which it is dead.

-- 'active' when any announced connection of the user is active, 'away' when all are away, nil when
-- the user has none.
local function user_status(uid)
  local conns = redis.call('HGETALL', KEYS[1])
  local any = false
  for i = 1, #conns, 2 do
    if conns[i + 1] == uid and redis.call('SISMEMBER', KEYS[3], conns[i]) == 1 then
      if redis.call('HGET', KEYS[6], conns[i]) ~= 'away' then return 'active' end
      any = true
    end
  end
  if any then return 'away' end
  return nil
end

-- Bring the user's presence entry in line with their connections' modes; returns the entry json when
-- its status changed, '' otherwise.
local function restatus(uid, now)
  local raw = redis.call('HGET', KEYS[5], uid)
  if not raw then return '' end
  local status = user_status(uid)
  if not status then return '' end
  local entry = cjson.decode(raw)
  if entry['status'] == status then return '' end
  entry['status'] = status
  if now then entry['last_seen_ms'] = now end
  local out = cjson.encode(entry)
  redis.call('HSET', KEYS[5], uid, out)
  return out
end

-- Returns {cid, uid, left, updated} or nil when it was not there, where left is '' or, when the user
-- just left, their presence entry (json) as it was, and updated is '' or, when the user stays but
-- their status changed (their last active tab went), the new entry.
local function remove(cid)
  local uid = redis.call('HGET', KEYS[1], cid)
  redis.call('ZREM', KEYS[2], cid)
  redis.call('HDEL', KEYS[6], cid)
  if not uid then return nil end
  redis.call('HDEL', KEYS[1], cid)
  local left, updated = '', ''
  if redis.call('SREM', KEYS[3], cid) == 1 then
    local n = redis.call('HINCRBY', KEYS[4], uid, -1)
    if n <= 0 then
      redis.call('HDEL', KEYS[4], uid)
      left = redis.call('HGET', KEYS[5], uid) or '{}'
      redis.call('HDEL', KEYS[5], uid)
    else
      updated = restatus(uid, nil)
    end
  end
  return {cid, uid, left, updated}
end
