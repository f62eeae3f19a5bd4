-- Heartbeat (after remove_connection.lua): move this connection's deadline, record its mode (when
-- the frame names one), update the user's last_seen (and status, when the mode changed it), and
-- remove peers whose deadline has passed (at most ARGV[5] of them).
-- KEYS as remove_connections.lua, then history, presence_batch. ARGV: cid, now_ms, mode ('active',
-- 'away' or '' to keep the connection's), deadline if active, deadline if away (ms), limit, the
-- presence batch's interval (ms).
-- Returns {alive (0/1), the deadline set, latest seq (0 when the history is empty), updated entry
-- json or '', presence batch due (0/1: a large workspace's batch is older than its interval and
-- this heartbeat's invocation posts it), cid, uid, left, updated, ...}.
local alive, updated, deadline = 0, '', ARGV[4]
local now = tonumber(ARGV[2])
local uid = redis.call('HGET', KEYS[1], ARGV[1])
if uid then
  alive = 1
  local changed = false
  if ARGV[3] == 'away' then
    changed = redis.call('HSET', KEYS[6], ARGV[1], 'away') == 1
  elseif ARGV[3] == 'active' then
    changed = redis.call('HDEL', KEYS[6], ARGV[1]) == 1
  end
  if redis.call('HEXISTS', KEYS[6], ARGV[1]) == 1 then deadline = ARGV[5] end
  redis.call('ZADD', KEYS[2], deadline, ARGV[1])
  local raw = redis.call('HGET', KEYS[5], uid)
  if raw then
    local entry = cjson.decode(raw)
    entry['last_seen_ms'] = now
    redis.call('HSET', KEYS[5], uid, cjson.encode(entry))
    if changed then updated = restatus(uid, now) end
  end
end
local latest = 0
local top = redis.call('ZRANGE', KEYS[7], -1, -1, 'WITHSCORES')
if top[2] then latest = tonumber(top[2]) end
local due = 0
local since = redis.call('HGET', KEYS[8], '~since')
if since and now - tonumber(since) >= tonumber(ARGV[7]) then due = 1 end
local out = {alive, tonumber(deadline), latest, updated, due}
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[6]))
for _, cid in ipairs(stale) do
  local r = remove(cid)
  if r then for j = 1, 4 do out[#out + 1] = r[j] end end
end
return out
