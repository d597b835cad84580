"""Lua scripts of the Redis session store: a version check and the write it guards, atomic.

Keys of one tenant share a hash tag (``{tenant}``), so that a script that touches a
session and the tenant's index stays within one cluster slot.
"""

from __future__ import annotations

__all__ = ["RELEASE", "RENEW", "SAVE"]

# KEYS: meta, turns, index, expiry. ARGV: mode ("append" | "replace"), expected version,
# now (unix seconds, for created/updated), ttl ms (0: kept), system JSON ("": unchanged),
# session id, then the messages' JSON. Returns {1, new version} or {0, actual version}.
# Expiry is Redis's own (PEXPIRE); the expiry zset mirrors it so that index entries of
# expired sessions can be dropped, and the index itself lives as long as its longest-lived
# session (a kept session keeps it for good).
SAVE = """
local meta, turns, index, expiry = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local mode, expected, now = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local ttl, system, id = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local version = tonumber(redis.call('HGET', meta, 'v') or '0')
if version ~= expected then
    return {0, version}
end
local total = #ARGV - 6
if version == 0 or mode == 'replace' then
    redis.call('DEL', turns)
end
if version == 0 then
    redis.call('HSET', meta, 'c', now)
elseif mode == 'append' then
    total = total + tonumber(redis.call('HGET', meta, 'n'))
end
for first = 7, #ARGV, 1000 do
    redis.call('RPUSH', turns, unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
redis.call('HSET', meta, 'v', version + 1, 'u', now, 'n', total)
if system ~= '' then
    redis.call('HSET', meta, 's', system)
end
if mode == 'replace' and version > 0 then
    local left = redis.call('PTTL', meta)
    if left > 0 then
        redis.call('PEXPIRE', turns, left)
    end
    return {1, version + 1}
end
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local index_new = redis.call('EXISTS', index) == 0
local expiry_new = redis.call('EXISTS', expiry) == 0
redis.call('ZADD', index, 0, id)
if ttl > 0 then
    redis.call('PEXPIRE', meta, ttl)
    redis.call('PEXPIRE', turns, ttl)
    redis.call('ZADD', expiry, now_ms + ttl, id)
else
    redis.call('PERSIST', meta)
    redis.call('PERSIST', turns)
    redis.call('ZREM', expiry, id)
end
local function outlive(key, new)
    if ttl == 0 then
        redis.call('PERSIST', key)
        return
    end
    local left = redis.call('PTTL', key)
    if new or (left >= 0 and left < ttl) then
        redis.call('PEXPIRE', key, ttl)
    end
end
outlive(index, index_new)
if ttl > 0 then
    outlive(expiry, expiry_new)
end
local dead = redis.call('ZRANGEBYSCORE', expiry, '-inf', now_ms, 'LIMIT', 0, 100)
if #dead > 0 then
    redis.call('ZREM', index, unpack(dead))
    redis.call('ZREM', expiry, unpack(dead))
end
return {1, version + 1}
"""

# KEYS: lock. ARGV: token, lease ms. 1 if the token still held it.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lock. ARGV: token. A lease another holder took over is left alone.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
