-- A connection's first frame admitted it (collab.domain.admission): record its display name and
-- forget its ticket (recorded as used in Postgres). KEYS: conn. ARGV: display_name.
-- Only while the record exists: a connection removed meanwhile must not come back as a fragment.
-- Returns 1, or 0 when the connection is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'name', ARGV[1])
redis.call('HDEL', KEYS[1], 'jti', 'jti_exp')
return 1
