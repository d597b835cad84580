"""Lua scripts of the Redis admission backend: each runs atomically inside Redis.

Data model (P = key prefix, t = tenant name, times in ms from Redis' own clock):

* ``P cfg:t``   hash  maxc, winv (1/weight), w (weight), l1 l2 l3 (requests/input/output
  per minute; -1 none)
* ``P win``     hash  cur max min succ dec_at factor step cooldown (the AIMD window), act
  (active_seconds in ms: the spare-slot horizon; 0 off)
* ``P slots``   zset  ticket -> lease expiry (gateway-wide window; expired members are dead)
* ``P slots:t`` zset  ticket -> lease expiry (the tenant's window)
* ``P q:t``     zset  waiting ticket -> arrival sequence (``P seq``), FIFO within a tenant
* ``P ql:t``    zset  waiting ticket -> lease expiry (a dead replica's waiters drop out)
* ``P need:t``  hash  waiting ticket -> "input output" tokens to reserve
* ``P active``  set   tenants with waiting tickets
* ``P seen``    zset  tenant -> time of its last admission request (spare slots)
* ``P peak``    hash  tenant -> "n at": the most slots it held at once recently, and when
* ``P vt``      hash  tenant -> virtual finish time; ``P vclock`` the system virtual time
* ``P tb:t``    hash  ts l1 l2 l3: token-bucket levels at ts (expires once surely full)
* ``P gone``    zset  cancelled or released ticket -> expiry (a lease): never queued again
* channel ``P grants``: ids of tickets granted on behalf of a waiting replica, and
  ``SETUP_NOTICE`` when SETUP found no state (every replica then renews at once)

Every script takes ARGV[1] = P and ARGV[2] = lease in ms. Keys are built inside the
scripts (the tenant set is dynamic), which standalone Redis and a single-slot prefix allow.

Redis may lose all of this (FLUSHDB, a restart without persistence, a failover to an empty
replica). Every script but SETUP then fails with an error starting with ``MISSING``
before it writes anything, and the backend runs SETUP again and retries: deciding with
defaults instead would mean a window of one and no tenant limits at all. Each replica
knows its own tickets, so RENEW counts again the held slots Redis lost, and RENEW and
PUMP queue again the waiting tickets it lost (not those CANCEL or RELEASE removed, which
they mark ``gone`` for a lease: the replica's list of waiters may be one round trip late).
"""

from __future__ import annotations

__all__ = ["ADMIT", "CANCEL", "PUMP", "RELEASE", "RENEW", "SETUP", "SNAPSHOT", "STATUS"]

# How the error of ``require_setup`` (in every script) starts: the configuration is gone.
MISSING = "NOSETUP"
# Published on the grants channel (ticket ids are hex) when SETUP created the state.
SETUP_NOTICE = "*setup"

_COMMON = r"""
local P = ARGV[1]
local LEASE = tonumber(ARGV[2])
local t0 = redis.call('TIME')
local NOW = tonumber(t0[1]) * 1000 + math.floor(tonumber(t0[2]) / 1000)
local cfgs = {}

-- Called first by every script that needs the configuration (Lua writes are not rolled
-- back on error): without it, fail so that the replica runs SETUP and retries.
local function require_setup(t)
  if redis.call('EXISTS', P .. 'win') == 0
     or (t ~= nil and redis.call('EXISTS', P .. 'cfg:' .. t) == 0) then
    error({err = 'NOSETUP admission state missing from Redis'})
  end
end

local function cfg(t)
  local c = cfgs[t]
  if c then return c end
  local v = redis.call('HMGET', P .. 'cfg:' .. t, 'maxc', 'winv', 'l1', 'l2', 'l3', 'w')
  c = {maxc = tonumber(v[1]) or -1, winv = tonumber(v[2]) or 1,
       lim = {tonumber(v[3]) or -1, tonumber(v[4]) or -1, tonumber(v[5]) or -1}}
  c.w = tonumber(v[6]) or 1 / c.winv
  cfgs[t] = c
  return c
end

local function bucket(t)
  local c = cfg(t)
  if c.lim[1] <= 0 and c.lim[2] <= 0 and c.lim[3] <= 0 then return {0, 0, 0} end
  local v = redis.call('HMGET', P .. 'tb:' .. t, 'ts', 'l1', 'l2', 'l3')
  local ts = tonumber(v[1])
  local lv = {0, 0, 0}
  for d = 1, 3 do
    local cap = c.lim[d]
    if cap > 0 then
      local l = tonumber(v[d + 1])
      if ts == nil or l == nil then l = cap
      else l = math.min(cap, l + (NOW - ts) * cap / 60000) end
      lv[d] = l
    end
  end
  return lv
end

local function save_bucket(t, lv)
  local c = cfg(t)
  local ttl = 1000
  for d = 1, 3 do
    local cap = c.lim[d]
    if cap > 0 then ttl = math.max(ttl, math.ceil((cap - lv[d]) * 60000 / cap) + 1000) end
  end
  local key = P .. 'tb:' .. t
  redis.call('HSET', key, 'ts', NOW, 'l1', tostring(lv[1]), 'l2', tostring(lv[2]),
             'l3', tostring(lv[3]))
  redis.call('PEXPIRE', key, ttl)
end

local function token_wait(t, lv, need)
  local c = cfg(t)
  local w = 0
  for d = 1, 3 do
    local cap = c.lim[d]
    if cap > 0 and lv[d] < need[d] then
      w = math.max(w, (need[d] - lv[d]) * 60000 / cap)
    end
  end
  return w
end

local function as_levels(lv)
  return {tostring(lv[1]), tostring(lv[2]), tostring(lv[3])}
end

local function levels(t)
  return as_levels(bucket(t))
end

local function live(key)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', NOW)
  return redis.call('ZCARD', key)
end

local function parse_need(s)
  local i, o = string.match(s or '0 0', '(%d+) (%d+)')
  return {1, tonumber(i) or 0, tonumber(o) or 0}
end

local function head(t)
  local q, ql = P .. 'q:' .. t, P .. 'ql:' .. t
  local dead = redis.call('ZRANGEBYSCORE', ql, '-inf', NOW)
  for _, id in ipairs(dead) do
    redis.call('ZREM', q, id)
    redis.call('ZREM', ql, id)
    redis.call('HDEL', P .. 'need:' .. t, id)
  end
  return redis.call('ZRANGE', q, 0, 0)[1]
end

-- A tenant's recent peak of slots held at once (0 once older than act ms).
local function peak(t, act)
  local n, at = string.match(redis.call('HGET', P .. 'peak', t) or '', '(%d+) (%d+)')
  if n == nil or tonumber(at) <= NOW - act then return 0 end
  return tonumber(n)
end

local function note_peak(t, held, act)
  if act > 0 and held >= peak(t, act) then
    redis.call('HSET', P .. 'peak', t, held .. ' ' .. NOW)
  end
end

-- Spare slots (see memory.py): for every active tenant (asked within ACT ms, or queued)
-- other than the ones in `waiting` (queued: fair queueing serves them) that is below its
-- share of the window and has room in its own window, as many slots as its recent peak
-- (up to its share) less what it holds, at least one; and the ms until the first of those
-- reservations lapses (-1: none). `waiting` maps tenant -> true.
local function reserved(act, win, waiting)
  if act <= 0 then return 0, -1 end
  local seen = P .. 'seen'
  redis.call('ZREMRANGEBYSCORE', seen, '-inf', NOW - act)
  local recent = redis.call('ZRANGE', seen, 0, -1, 'WITHSCORES')
  local total, n = 0, 0
  local counted = {}
  for i = 1, #recent, 2 do
    counted[recent[i]] = true
    total = total + cfg(recent[i]).w
    n = n + 1
  end
  for t in pairs(waiting) do
    if not counted[t] then
      total = total + cfg(t).w
      n = n + 1
    end
  end
  if n < 2 then return 0, -1 end
  local count, lapse = 0, -1
  for i = 1, #recent, 2 do
    local t = recent[i]
    if not waiting[t] then
      local c = cfg(t)
      local held = live(P .. 'slots:' .. t)
      local share = win * c.w / total
      if held < share and (c.maxc < 0 or held < c.maxc) then
        local want = math.min(peak(t, act), math.floor(share)) - held
        if c.maxc >= 0 then want = math.min(want, c.maxc - held) end
        count = count + math.max(want, 1)
        local left = tonumber(recent[i + 1]) + act - NOW
        if lapse < 0 or left < lapse then lapse = left end
      end
    end
  end
  return count, lapse
end

-- Give ticket `id` of tenant t a slot: its leases, its peak, its tokens (`lv` less `need`)
-- and its virtual finish time `tag`.
local function grant(t, id, need, lv, tag, act)
  redis.call('ZADD', P .. 'slots', NOW + LEASE, id)
  redis.call('ZADD', P .. 'slots:' .. t, NOW + LEASE, id)
  note_peak(t, live(P .. 'slots:' .. t), act)
  local c = cfg(t)
  if c.lim[1] > 0 or c.lim[2] > 0 or c.lim[3] > 0 then
    for d = 1, 3 do lv[d] = lv[d] - need[d] end
    save_bucket(t, lv)
  end
  redis.call('HSET', P .. 'vt', t, tostring(tag))
end

-- Grant free slots to eligible queue heads: the tenant holding the fewest slots per unit of
-- weight first, then the smallest virtual finish time; keeping spare slots free (see
-- `reserved`).
-- Returns the granted ids (published unless equal to `quiet`) and the ms until a
-- token-blocked head becomes eligible or a spare slot lapses (-1 when none).
local function dispatch(quiet)
  local granted, wake = {}, -1
  -- Nobody waits (the common case: a release with no queue behind it): nothing to grant.
  if redis.call('EXISTS', P .. 'active') == 0 then return granted, wake end
  local gk = P .. 'slots'
  local inflight = live(gk)
  local wv = redis.call('HMGET', P .. 'win', 'cur', 'act')
  local win = tonumber(wv[1]) or 1
  local act = tonumber(wv[2]) or 0
  local V = tonumber(redis.call('GET', P .. 'vclock')) or 0
  local blocked, waiting = {}, {}
  while inflight < win do
    local best, best_tag, best_start, best_id, best_need, best_lv, best_share
    for _, t in ipairs(redis.call('SMEMBERS', P .. 'active')) do
      if not blocked[t] then
        local id = head(t)
        waiting[t] = id ~= nil or nil  -- a blocked tenant keeps its (queued) entry
        local c = cfg(t)
        if not id then
          redis.call('SREM', P .. 'active', t)
          blocked[t] = true
        elseif c.maxc >= 0 and live(P .. 'slots:' .. t) >= c.maxc then
          blocked[t] = true
        else
          local need = parse_need(redis.call('HGET', P .. 'need:' .. t, id))
          local lv = bucket(t)
          local w = token_wait(t, lv, need)
          if w > 0 then
            blocked[t] = true
            if wake < 0 or w < wake then wake = w end
          else
            local start = math.max(tonumber(redis.call('HGET', P .. 'vt', t)) or 0, V)
            local tag = start + c.winv
            -- Fewest slots per unit of weight first (see memory.py), then the tag.
            local share = live(P .. 'slots:' .. t) * c.winv
            if best == nil or share < best_share or (share == best_share and (tag < best_tag
                or (tag == best_tag and t < best))) then
              best, best_tag, best_start, best_id, best_need, best_lv = t, tag, start, id, need, lv
              best_share = share
            end
          end
        end
      end
    end
    if best == nil then break end
    local held, lapse = reserved(act, win, waiting)
    if win - inflight <= held then
      -- Queued tenants reserve nothing, so every candidate sees the same reservations.
      -- Pollers come back 1 ms after the first reservation lapses (arrivals and releases
      -- dispatch anyway).
      if wake < 0 or lapse + 1 < wake then wake = lapse + 1 end
      break
    end
    redis.call('ZREM', P .. 'q:' .. best, best_id)
    redis.call('ZREM', P .. 'ql:' .. best, best_id)
    redis.call('HDEL', P .. 'need:' .. best, best_id)
    grant(best, best_id, best_need, best_lv, best_tag, act)
    V = best_start
    inflight = inflight + 1
    granted[#granted + 1] = best_id
    if best_id ~= quiet then redis.call('PUBLISH', P .. 'grants', best_id) end
  end
  redis.call('SET', P .. 'vclock', tostring(V))
  return granted, wake
end

local function refund(t, d_in, d_out)
  local c = cfg(t)
  if (c.lim[2] > 0 and d_in ~= 0) or (c.lim[3] > 0 and d_out ~= 0) then
    local lv = bucket(t)
    if c.lim[2] > 0 then lv[2] = math.min(c.lim[2], lv[2] + d_in) end
    if c.lim[3] > 0 then lv[3] = math.min(c.lim[3], lv[3] + d_out) end
    save_bucket(t, lv)
  end
end

-- A ticket the calling replica still waits on, missing from Redis (the state was lost, or
-- its queue lease ran out while Redis was unreachable): queue it again, last in line.
-- Not if it was granted, is queued, or was cancelled. -> true if queued again.
local function requeue(t, id, input, output)
  local gone = tonumber(redis.call('ZSCORE', P .. 'gone', id))
  if (gone and gone > NOW) or redis.call('ZSCORE', P .. 'slots', id)
     or redis.call('ZSCORE', P .. 'q:' .. t, id) then
    return false
  end
  redis.call('ZADD', P .. 'q:' .. t, redis.call('INCR', P .. 'seq'), id)
  redis.call('ZADD', P .. 'ql:' .. t, NOW + LEASE, id)
  redis.call('HSET', P .. 'need:' .. t, id, input .. ' ' .. output)
  redis.call('SADD', P .. 'active', t)
  return true
end
"""

# ARGV: P, lease, then per tenant: name maxc winv w l1 l2 l3;
# then max min factor step cooldown act.  -> 1 if there was no state (created), else 0.
# Idempotent: the replicas that find the state gone at once may all run it.
SETUP = r"""
local P = ARGV[1]
local n = (#ARGV - 8) / 7
for i = 0, n - 1 do
  local b = 3 + i * 7
  redis.call('HSET', P .. 'cfg:' .. ARGV[b], 'maxc', ARGV[b + 1], 'winv', ARGV[b + 2],
             'w', ARGV[b + 3], 'l1', ARGV[b + 4], 'l2', ARGV[b + 5], 'l3', ARGV[b + 6])
end
local w = 3 + n * 7
local max = tonumber(ARGV[w])
redis.call('HSET', P .. 'win', 'max', max, 'min', ARGV[w + 1], 'factor', ARGV[w + 2],
           'step', ARGV[w + 3], 'cooldown', ARGV[w + 4], 'act', ARGV[w + 5])
local cur = tonumber(redis.call('HGET', P .. 'win', 'cur'))
if cur == nil or cur > max then redis.call('HSET', P .. 'win', 'cur', max) end
if cur ~= nil then return 0 end
redis.call('PUBLISH', P .. 'grants', '*setup')
return 1
"""

# ARGV: P, lease, then one or more groups of: tenant, id, input, output, timeout_ms
# (requests admitted together, each exactly as if alone, in order).
# -> for each group: {1, levels} granted now | {0, levels} queued | {-1, wait_ms, levels}
# rejected.
ADMIT = (
    _COMMON
    + r"""
-- With nobody waiting, `dispatch` would weigh this request alone: the same checks and
-- the same grant, without queueing it first (half the commands of the queued path).
-- -> true if granted; false: it queues, and dispatch decides as it always does.
local function admit_alone(t, id, need, lv, win, act)
  if redis.call('EXISTS', P .. 'active') == 1 then return false end
  local inflight = live(P .. 'slots')
  local c = cfg(t)
  if inflight >= win or (c.maxc >= 0 and live(P .. 'slots:' .. t) >= c.maxc) then
    return false
  end
  if win - inflight <= reserved(act, win, {[t] = true}) then return false end
  local V = tonumber(redis.call('GET', P .. 'vclock')) or 0
  local start = math.max(tonumber(redis.call('HGET', P .. 'vt', t)) or 0, V)
  grant(t, id, need, lv, start + c.winv, act)
  redis.call('SET', P .. 'vclock', tostring(start))
  return true
end

local function admit(t, id, input, output, timeout)
  local need = {1, tonumber(input), tonumber(output)}
  local lv = bucket(t)
  local w = token_wait(t, lv, need)
  if w > tonumber(timeout) then return {-1, tostring(w), as_levels(lv)} end
  local wv = redis.call('HMGET', P .. 'win', 'cur', 'act')
  local act = tonumber(wv[2]) or 0
  if act > 0 then
    redis.call('ZADD', P .. 'seen', NOW, t)
  end
  if w == 0 and admit_alone(t, id, need, lv, tonumber(wv[1]) or 1, act) then
    return {1, '0', as_levels(lv)}
  end
  local seq = redis.call('INCR', P .. 'seq')
  redis.call('ZADD', P .. 'q:' .. t, seq, id)
  redis.call('ZADD', P .. 'ql:' .. t, NOW + LEASE, id)
  redis.call('HSET', P .. 'need:' .. t, id, input .. ' ' .. output)
  redis.call('SADD', P .. 'active', t)
  local granted = dispatch(id)
  for _, g in ipairs(granted) do
    if g == id then return {1, '0', levels(t)} end
  end
  return {0, '0', levels(t)}
end

-- Every tenant's configuration first: a loss found half-way would leave the requests
-- before it admitted while their callers learn of the loss and try again.
for g = 3, #ARGV, 5 do require_setup(ARGV[g]) end
local replies = {}
for g = 3, #ARGV, 5 do
  replies[#replies + 1] = admit(ARGV[g], ARGV[g + 1], ARGV[g + 2], ARGV[g + 3], ARGV[g + 4])
end
return replies
"""
)

# ARGV: P, lease, then one or more groups of: tenant, id, input_refund, output_refund
# (tickets released together: the queues are dispatched once for all of them).
# -> for each group, 1 if the slot was still held.
RELEASE = (
    _COMMON
    + r"""
require_setup(nil)
local held = {}
-- Gone for a lease, as after CANCEL: a PUMP or RENEW sent while this ticket still waited
-- (the replica's list of waiters is a round trip late) must not queue it again.
redis.call('ZREMRANGEBYSCORE', P .. 'gone', '-inf', NOW)
for g = 3, #ARGV, 4 do
  local t, id = ARGV[g], ARGV[g + 1]
  held[#held + 1] = redis.call('ZREM', P .. 'slots', id)
  redis.call('ZREM', P .. 'slots:' .. t, id)
  redis.call('ZADD', P .. 'gone', NOW + LEASE, id)
  refund(t, tonumber(ARGV[g + 2]), tonumber(ARGV[g + 3]))
end
redis.call('PEXPIRE', P .. 'gone', LEASE)
dispatch(nil)
return held
"""
)

# ARGV: P, lease, tenant, id, input, output, give_back (1: release a grant that raced in).
# -> {granted_meanwhile, wait_ms, levels}
CANCEL = (
    _COMMON
    + r"""
require_setup(nil)
local t, id = ARGV[3], ARGV[4]
local need = {1, tonumber(ARGV[5]), tonumber(ARGV[6])}
local queued = redis.call('ZREM', P .. 'q:' .. t, id)
redis.call('ZREM', P .. 'ql:' .. t, id)
redis.call('HDEL', P .. 'need:' .. t, id)
redis.call('ZREMRANGEBYSCORE', P .. 'gone', '-inf', NOW)
redis.call('ZADD', P .. 'gone', NOW + LEASE, id)
redis.call('PEXPIRE', P .. 'gone', LEASE)
local granted = 0
if queued == 0 and redis.call('ZSCORE', P .. 'slots', id) then
  granted = 1
  if ARGV[7] == '1' then
    redis.call('ZREM', P .. 'slots', id)
    redis.call('ZREM', P .. 'slots:' .. t, id)
    refund(t, need[2], need[3])
    granted = 0
  end
end
dispatch(nil)
return {granted, tostring(token_wait(t, bucket(t), need)), levels(t)}
"""
)

# ARGV: P, lease, n, then n (tenant, id, input, output) queued tickets of this replica,
# then the ids of its tickets still being admitted.  -> {wake_ms, granted ids of those...}
PUMP = (
    _COMMON
    + r"""
require_setup(nil)
local last = 3 + 4 * tonumber(ARGV[3])
for i = 4, last, 4 do requeue(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]) end
local _, wake = dispatch(nil)
local out = {tostring(wake)}
local function report(id)
  if redis.call('ZSCORE', P .. 'slots', id) then out[#out + 1] = id end
end
for i = 4, last, 4 do report(ARGV[i + 1]) end
for i = last + 1, #ARGV do report(ARGV[i]) end
return out
"""
)

# ARGV: P, lease, n, then n (tenant, id) held pairs, then (tenant, id, input, output)
# queued tickets, all of this replica.
# -> ids of held slots that were gone (lease expired, or the state lost), now counted again.
RENEW = (
    _COMMON
    + r"""
require_setup(nil)
local last = 3 + 2 * tonumber(ARGV[3])
local lost = {}
local exp = NOW + LEASE
for i = 4, last, 2 do
  local t, id = ARGV[i], ARGV[i + 1]
  if redis.call('ZADD', P .. 'slots', exp, id) == 1 then lost[#lost + 1] = id end
  redis.call('ZADD', P .. 'slots:' .. t, exp, id)
end
local requeued = false
for i = last + 1, #ARGV, 4 do
  local t, id = ARGV[i], ARGV[i + 1]
  if requeue(t, id, ARGV[i + 2], ARGV[i + 3]) then
    requeued = true
  else
    redis.call('ZADD', P .. 'ql:' .. t, 'XX', exp, id)
  end
end
if requeued then dispatch(nil) end
return lost
"""
)

# ARGV: P, lease, status.  -> current window
STATUS = (
    _COMMON
    + r"""
require_setup(nil)
local status = tonumber(ARGV[3])
local k = P .. 'win'
local v = redis.call('HMGET', k, 'cur', 'max', 'min', 'succ', 'dec_at', 'factor', 'step',
                     'cooldown')
local cur, max, min = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
local succ, dec_at = tonumber(v[4]) or 0, tonumber(v[5]) or -1e18
if status == 429 or status == 529 then
  if NOW - dec_at >= tonumber(v[8]) then
    cur = math.max(min, math.floor(cur * tonumber(v[6])))
    redis.call('HSET', k, 'cur', cur, 'dec_at', NOW)
  end
  redis.call('HSET', k, 'succ', 0)
elseif status >= 200 and status < 400 and cur < max then
  succ = succ + 1
  if succ >= cur then
    cur = math.min(max, cur + tonumber(v[7]))
    redis.call('HSET', k, 'cur', cur, 'succ', 0)
    dispatch(nil)
  else
    redis.call('HSET', k, 'succ', succ)
  end
end
return cur
"""
)

# ARGV: P, lease, tenants...  -> {window, max, in_flight, then per tenant: in_flight, queued}
SNAPSHOT = (
    _COMMON
    + r"""
require_setup(nil)
local v = redis.call('HMGET', P .. 'win', 'cur', 'max')
local out = {tonumber(v[1]) or 0, tonumber(v[2]) or 0, live(P .. 'slots')}
for i = 3, #ARGV do
  out[#out + 1] = live(P .. 'slots:' .. ARGV[i])
  out[#out + 1] = redis.call('ZCARD', P .. 'q:' .. ARGV[i])
end
return out
"""
)
