"""Lua scripts of the stream runtime; each keeps one multi-step decision atomic on the server."""

READ_KEYED = """
-- Queue each entry the consumer's next read will get behind the earlier entries of its key, so
-- two consumers reading at once cannot invert a key's order. Sent in one MULTI right before the
-- consumer's XREADGROUP '>': the entries after the group's last delivered id are exactly the
-- ones that XREADGROUP then delivers, as the server's own reply (Lua never copies the payloads
-- back out). The key is the entry's top-level field 'key:<name>' or, in entries written without
-- it, the field <name> of the JSON payload (a Python key function could not run here).
-- Reply: the lease value this read took ('' if none), then per entry its key and either the
-- entry queued just before it, or 1 when it heads the queue and the lease was just taken for
-- it, or 0 (heads the queue, another consumer holds the key; or no key). With nothing to read:
-- {the group's last delivered id}, for a blocking XREAD from there.
-- KEYS: stream, lease counter   ARGV: group, consumer, count, key name, queue prefix,
-- lease prefix, lease ms
local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])
if groups.err then return redis.error_reply('NOGROUP ' .. groups.err) end
local last = nil
for _, g in ipairs(groups) do
  local name, delivered = nil, nil
  for j = 1, #g, 2 do
    if g[j] == 'name' then name = g[j + 1] elseif g[j] == 'last-delivered-id' then
      delivered = g[j + 1]
    end
  end
  if name == ARGV[1] then last = delivered; break end
end
if not last then return redis.error_reply('NOGROUP no such consumer group for this read') end
local r = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', ARGV[3])
if #r == 0 then return {last} end
local tagged = 'key:' .. ARGV[4]
local mine = ARGV[2] .. '|'
local token = nil
local out = {''}
for _, e in ipairs(r) do
  local f = e[2]
  local key = ''
  for j = #f - 1, 1, -2 do  -- from the end: EventLog.append writes key fields last
    if f[j] == tagged then key = f[j + 1]; break end
  end
  if key == '' then
    for j = 1, #f, 2 do
      if f[j] == 'data' then
        local ok, obj = pcall(cjson.decode, f[j + 1])
        if ok and type(obj) == 'table' then
          local v = obj[ARGV[4]]
          if type(v) == 'string' or type(v) == 'number' then key = tostring(v) end
        end
        break
      end
    end
  end
  local res = 0
  if key ~= '' then
    local q = ARGV[5] .. key
    if redis.call('RPUSH', q, e[1]) > 1 then
      res = redis.call('LINDEX', q, -2)
    else
      -- one fencing token per read: a key is granted at most once in it
      token = token or mine .. redis.call('INCR', KEYS[2])
      local lease = ARGV[6] .. key
      if redis.call('SET', lease, token, 'NX', 'PX', ARGV[7]) then
        res = 1
      elseif string.sub(redis.call('GET', lease), 1, #mine) == mine then
        redis.call('SET', lease, token, 'PX', ARGV[7])
        res = 1
      end
    end
  end
  out[#out + 1] = key
  out[#out + 1] = res
end
out[1] = token or ''
return out
"""

TAKE = """
-- May this consumer start entry ARGV[1]? Only while the entry is still pending for it (not taken
-- over by another consumer), heads its key's queue, and nobody else holds the key's lease; then
-- hold the lease: the value it already holds (ARGV[5]) is kept, else a new fencing token.
-- KEYS: key queue, lease, lease counter, stream   ARGV: id, consumer, lease ms, group, held value
local p = redis.call('XPENDING', KEYS[4], ARGV[4], ARGV[1], ARGV[1], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return {'gone', '', 0} end
local head = redis.call('LINDEX', KEYS[1], 0)
if head and head ~= ARGV[1] then return {'wait', head, 0} end
local cur = redis.call('GET', KEYS[2])
if cur and cur == ARGV[5] then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return {'ok', cur, 0}
end
if cur and string.sub(cur, 1, #ARGV[2] + 1) ~= ARGV[2] .. '|' then
  return {'busy', cur, redis.call('PTTL', KEYS[2])}
end
local token = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[2], ARGV[2] .. '|' .. token, 'PX', ARGV[3])
return {'ok', ARGV[2] .. '|' .. token, 0}
"""

FINISH = """
-- Finish a batch of keyed entries, key by key. Unless the key's lease was lost (then nothing of
-- that key is acked: 'fenced'), ack its entries (copying those with dead-letter fields to the
-- dead-letter stream first) and drop them from the key's queue. Then keep the lease when the
-- queue's next entry is this consumer's ('kept': its next local one, or one it read and has
-- not seen yet), or release it and announce that entry on the wake channel: a hand-over
-- ('released'). The batch comes as JSON: one argument instead of several per entry.
-- KEYS: stream, dlq   ARGV: group, wake channel, lease ms, queue prefix, lease prefix,
-- [[key, lease value, next local id, [ids...]], ...], {id: [dead-letter fields...], ...},
-- consumer
local groups, dead = cjson.decode(ARGV[6]), cjson.decode(ARGV[7])
local out, acked = {}, {}
for g = 1, #groups do
  local key, value, nxt, ids = groups[g][1], groups[g][2], groups[g][3], groups[g][4]
  local q, lease = ARGV[4] .. key, ARGV[5] .. key
  local cur = redis.call('GET', lease)
  if cur and cur ~= value then
    out[g] = 'fenced'
  else
    for _, id in ipairs(ids) do
      local fields = dead[id]
      if fields then redis.call('XADD', KEYS[2], '*', unpack(fields)) end
      acked[#acked + 1] = id
      redis.call('LREM', q, 1, id)
    end
    local head = redis.call('LINDEX', q, 0)
    local mine = head and head == nxt
    if head and not mine then
      local p = redis.call('XPENDING', KEYS[1], ARGV[1], head, head, 1)
      mine = #p > 0 and p[1][2] == ARGV[8]
    end
    if mine then
      redis.call('SET', lease, value, 'PX', ARGV[3])
      out[g] = 'kept'
    else
      if cur then redis.call('DEL', lease) end
      if head then redis.call('PUBLISH', ARGV[2], head) end
      out[g] = 'released'
    end
  end
end
if #acked > 0 then redis.call('XACK', KEYS[1], ARGV[1], unpack(acked)) end
return out
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
-- entry already taken over by another consumer is left alone (a blind XCLAIM would steal it back)
-- and returned, so that this consumer does not start it.
-- KEYS: stream   ARGV: group, consumer, ids...
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p > 0 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
"""
