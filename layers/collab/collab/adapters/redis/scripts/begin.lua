-- Sliding-window limiter and idempotency claim in one step. The frame counts against the limit
-- first; a refused frame claims nothing. KEYS: window[, request]. ARGV: now_ms, window_ms, limit,
-- member, request ttl_s. Returns {'limited', retry_ms} | {'new', ''} | {'seen', value}.
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  if redis.call('ZCARD', KEYS[1]) >= limit then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {'limited', tostring(math.max(1, tonumber(oldest[2]) + window - now))}
  end
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
end
if #KEYS < 2 then return {'new', ''} end
if redis.call('SET', KEYS[2], 'pending', 'NX', 'EX', tonumber(ARGV[5])) then return {'new', ''} end
return {'seen', redis.call('GET', KEYS[2]) or 'pending'}
