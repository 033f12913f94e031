"""Lua scripts of the stream runtime; each keeps one multi-step decision atomic on the server."""

READ_KEYED = """
-- Read new entries for a consumer and, in the same atomic step, queue each one behind the
-- earlier entries of its key. A Python key function could not run here, which is why an agent's
-- key is the name of a field of its payload.
local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
                     'STREAMS', KEYS[1], '>')
if not r then
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if #last > 0 then return {0, last[1][1]} end
  return {0, '0-0'}
end
local out = {}
for _, e in ipairs(r[1][2]) do
  local f = e[2]
  local key = ''
  for j = 1, #f, 2 do
    if f[j] == 'data' then
      local ok, obj = pcall(cjson.decode, f[j + 1])
      if ok and type(obj) == 'table' then
        local v = obj[ARGV[4]]
        if type(v) == 'string' or type(v) == 'number' then key = tostring(v) end
      end
    end
  end
  if key ~= '' then redis.call('RPUSH', ARGV[5] .. key, e[1]) end
  out[#out + 1] = {e[1], f, key}
end
return {1, out}
"""

BEGIN = """
-- May this consumer start entry ARGV[1]? Only while the entry is still pending for it (not taken
-- over by another consumer), heads its key's queue, and nobody else holds the key's lease; then
-- take the lease with a new fencing token.
-- KEYS: key queue, lease, lease counter, stream   ARGV: id, consumer, lease ms, group
local p = redis.call('XPENDING', KEYS[4], ARGV[4], ARGV[1], ARGV[1], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return {'gone', '', 0} end
local head = redis.call('LINDEX', KEYS[1], 0)
if head and head ~= ARGV[1] then return {'wait', head, 0} end
local cur = redis.call('GET', KEYS[2])
if cur and string.sub(cur, 1, #ARGV[2] + 1) ~= ARGV[2] .. '|' then
  return {'busy', cur, redis.call('PTTL', KEYS[2])}
end
local token = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[2], ARGV[2] .. '|' .. token, 'PX', ARGV[3])
return {'ok', ARGV[2] .. '|' .. token, 0}
"""

FINISH = """
-- Ack an entry (optionally after copying it to the dead-letter stream), release its key's lease
-- and announce the key's next entry on the wake channel. Refused when the lease was lost.
-- KEYS: stream, key queue ('' if none), lease, dlq   ARGV: group, id, lease value, wake channel,
-- dlq flag, dlq fields...
if ARGV[3] ~= '' then
  local cur = redis.call('GET', KEYS[3])
  if cur and cur ~= ARGV[3] then return 'fenced' end
  if cur then redis.call('DEL', KEYS[3]) end
end
if ARGV[5] == '1' then
  redis.call('XADD', KEYS[4], '*', unpack(ARGV, 6))
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if KEYS[2] ~= '' then
  redis.call('LREM', KEYS[2], 1, ARGV[2])
  local head = redis.call('LINDEX', KEYS[2], 0)
  if head then redis.call('PUBLISH', ARGV[4], head) end
end
return 'ok'
"""

RENEW = """
-- Extend the leases that are still ours, all in one round trip.
-- KEYS: leases   ARGV: lease ms, the value we hold for each lease
local renewed = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i + 1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
    renewed = renewed + 1
  end
end
return renewed
"""

DROP_STALE_HEAD = """
-- Remove a key queue's head that is no longer pending in the group (acked or trimmed away),
-- so a lost entry cannot block its key forever.
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then return 0 end
local p = redis.call('XPENDING', KEYS[2], ARGV[2], ARGV[1], ARGV[1], 1)
if #p > 0 then return 0 end
redis.call('LPOP', KEYS[1])
return 1
"""

HEARTBEAT = """
-- Reset the idle time of the entries this consumer still owns, so nobody takes them over; an
-- entry already taken over by another consumer is left alone (a blind XCLAIM would steal it back).
-- KEYS: stream   ARGV: group, consumer, ids...
local kept = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p > 0 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept = kept + 1
  end
end
return kept
"""
