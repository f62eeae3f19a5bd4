-- Presence in a large workspace (collab.domain.presence.LARGE_ROOM synced connections or more): its
-- changes wait in one hash and go out together, one presence.batch frame per interval, instead of
-- one frame per change to every peer (a reconnect storm of n users would otherwise be n^2 posts).
-- KEYS: joined (set of announced connections), batch (hash uid -> 'type|data json', '~since' -> ms),
-- large (set for 10 minutes whenever the workspace had threshold synced connections: a workspace
-- stays large through a reconnect storm, when its connections are briefly few).
-- ARGV: threshold (connections), now_ms, interval_ms, then pairs uid, 'type|data json' (none: only
-- flush what is due).
-- Returns {'direct'} (a small workspace with nothing pending: the caller posts as before),
-- {'held'} / {'held-new'} (kept; 'held-new' when this began the batch), {'none'} (nothing pending),
-- or {'flush', uid, change, ...}: the interval has passed, the batch is taken and the caller posts it.
-- Per user, the latest change wins, except that a join stays a join (an update after it is the
-- entry peers first see) and a join then a leave within one interval cancel out.
local now, interval = tonumber(ARGV[2]), tonumber(ARGV[3])
local adding = #ARGV > 3
if adding then
  local large = redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[1])
  if large then
    redis.call('SET', KEYS[3], 1, 'PX', 600000)
  elseif redis.call('EXISTS', KEYS[3]) == 0 and redis.call('EXISTS', KEYS[2]) == 0 then
    return {'direct'}
  end
end
local created = false
if adding then
  created = redis.call('HSETNX', KEYS[2], '~since', now) == 1
  for i = 4, #ARGV, 2 do
    local uid, change = ARGV[i], ARGV[i + 1]
    local kind = string.match(change, '^[^|]+')
    local prev = redis.call('HGET', KEYS[2], uid)
    local before = prev and string.match(prev, '^[^|]+')
    if before == 'presence.joined' and kind == 'presence.left' then
      redis.call('HDEL', KEYS[2], uid)
    elseif before == 'presence.joined' and kind == 'presence.updated' then
      redis.call('HSET', KEYS[2], uid, 'presence.joined' .. string.sub(change, #kind + 1))
    else
      redis.call('HSET', KEYS[2], uid, change)
    end
  end
  -- a batch nobody flushes (every connection gone at once) is dropped with them
  redis.call('PEXPIRE', KEYS[2], 300000)
end
local since = tonumber(redis.call('HGET', KEYS[2], '~since') or '0')
if since == 0 then return {'none'} end
if now - since < interval then
  if created then return {'held-new'} end
  return {'held'}
end
local all = redis.call('HGETALL', KEYS[2])
redis.call('DEL', KEYS[2])
local out = {'flush'}
for i = 1, #all, 2 do
  if all[i] ~= '~since' then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
