-- The delivery tracer (docs/operations.md): record one event's outcome for every registered
-- connection of the workspace, keep the latest ARGV[4] records, remember removed members.
-- KEYS: conns (hash cid->uid), trace (zset seq->record json), removed (hash uid->seq).
-- ARGV: seq, outcomes json {cid: outcome} of the fan-out, sender cid or '', keep, removed uid or '',
--       event type, timestamp.
-- A fan-out split across invocations (collab.domain.fanout) records the same seq several times, in
-- any order: each record is merged with the one already there, a post's outcome winning over
-- 'dispatched', and both over 'not_synced'.
local seq = tonumber(ARGV[1])
local outcomes = cjson.decode(ARGV[2])
local registered = redis.call('HGETALL', KEYS[1])
local rank = {not_synced = 0, dispatched = 1}
local before = {}
local old = redis.call('ZRANGEBYSCORE', KEYS[2], seq, seq)[1]
if old then
  for _, row in ipairs(cjson.decode(old)['connections']) do before[row[1]] = {row[2], row[3]} end
end
local function merged(cid, outcome)
  local prev = before[cid]
  if prev and (rank[prev[2]] or 2) > (rank[outcome] or 2) then return prev[2] end
  return outcome
end
local rows = {}
local seen = {}
for i = 1, #registered, 2 do
  local cid, uid = registered[i], registered[i + 1]
  local outcome = outcomes[cid]
  if cid == ARGV[3] then
    outcome = 'sender'
  elseif not outcome then
    outcome = 'not_synced'
  end
  seen[cid] = true
  rows[#rows + 1] = {cid, uid, merged(cid, outcome)}
end
for cid, outcome in pairs(outcomes) do
  if not seen[cid] then
    seen[cid] = true
    rows[#rows + 1] = {cid, (before[cid] or {''})[1], merged(cid, outcome)}
  end
end
for cid, prev in pairs(before) do  -- gone from the registry since (pruned by another chunk)
  if not seen[cid] then rows[#rows + 1] = {cid, prev[1], prev[2]} end
end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[3], ARGV[5], seq) end
local record = cjson.encode({seq = seq, type = ARGV[6], timestamp = ARGV[7], connections = rows})
redis.call('ZREMRANGEBYSCORE', KEYS[2], seq, seq)
redis.call('ZADD', KEYS[2], seq, record)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[4]) + 1))
-- removed members older than the oldest record explain nothing any more
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]
if oldest then
  local removed = redis.call('HGETALL', KEYS[3])
  for i = 1, #removed, 2 do
    if tonumber(removed[i + 1]) < tonumber(oldest) then redis.call('HDEL', KEYS[3], removed[i]) end
  end
end
return 1
