-- Remove connections from a workspace (after remove_connection.lua). KEYS: conns, hb, joined,
-- online, presence. ARGV: cid1, cid2, ... Returns a flat list {cid, uid, left, ...} for those that
-- were present.
local out = {}
for i = 1, #ARGV do
  local r = remove(ARGV[i])
  if r then out[#out+1] = r[1]; out[#out+1] = r[2]; out[#out+1] = r[3] end
end
return out
