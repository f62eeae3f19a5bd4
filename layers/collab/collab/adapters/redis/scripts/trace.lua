-- The delivery tracer (docs/operations.md): record one event's outcome for every registered
-- connection of the workspace, keep the latest ARGV[4] records, remember removed members.
-- KEYS: conns (hash cid->uid), trace (zset seq->record json), removed (hash uid->seq).
-- ARGV: seq, outcomes json {cid: outcome} of the fan-out, sender cid or '', keep, removed uid or '',
--       event type, timestamp.
local seq = tonumber(ARGV[1])
local outcomes = cjson.decode(ARGV[2])
local registered = redis.call('HGETALL', KEYS[1])
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
  rows[#rows + 1] = {cid, uid, outcome}
end
for cid, outcome in pairs(outcomes) do
  if not seen[cid] then rows[#rows + 1] = {cid, '', outcome} end
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
