-- Remove connections from a workspace (after remove_connection.lua). KEYS: conns, hb, joined,
-- online, presence, modes. ARGV: cid1, cid2, ... Returns a flat list {cid, uid, left, updated, ...}
-- for those that were present.
local out = {}
for i = 1, #ARGV do
  local r = remove(ARGV[i])
  if r then for j = 1, 4 do out[#out + 1] = r[j] end end
end
return out
