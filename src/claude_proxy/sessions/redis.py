"""Sessions in Redis, shared by every replica.

Keys, for session ``s`` of tenant ``t`` under ``key_prefix`` ``P`` (the ``{t}`` hash tag
keeps a tenant's keys in one cluster slot, so one script can write a session and the
tenant's index; ``%`` and ``}`` in ``t`` are percent-escaped)::

    P{t}:m:s     hash    v (version), c (created), u (updated), n (turns), s (system JSON)
    P{t}:t:s     list    the messages' JSON, in order
    P{t}:index   zset    the tenant's session ids, all scored 0 (ordered by bytes: listing)
    P{t}:expiry  zset    session id -> expiry (ms): drops index entries of expired sessions
    P{t}:lock:s  string  the lock holder's token, expiring with its lease

A session's keys expire by Redis's own TTL. Appends and replaces are one Lua script each
(version check and write together), and the ones made while others are in flight share
one pipeline, so one round trip (``coalesce``); a load reads both keys in one MULTI. How much of a
completed append survives a Redis restart is Redis's persistence setting (AOF
``appendfsync``), not the gateway's.
"""

from __future__ import annotations

import builtins
import time
from contextlib import AbstractAsyncContextManager
from typing import Any, Self

from redis import asyncio as aioredis
from redis.exceptions import NoScriptError

from claude_proxy.sessions.base import Session, SessionConflict, SessionInfo, SessionSettings
from claude_proxy.sessions.coalesce import Coalescer, Outcome
from claude_proxy.sessions.codec import decode_messages, decode_value, encode_messages, encode_value
from claude_proxy.sessions.leases import Leases
from claude_proxy.sessions.redis_scripts import RELEASE, RENEW, SAVE
from claude_proxy.state import StateUnavailable
from claude_proxy.state.health import HealthCheck
from claude_proxy.state.redis import close_within, open_redis, translate_redis_errors

__all__ = ["RedisStore"]

MAX_PIPELINE = 128  # saves per round trip


# A save's keys and arguments (see redis_scripts.SAVE).
_Save = tuple[tuple[str, str, str, str], list[bytes | str | int]]


class _Keys:
    __slots__ = ("expiry", "index", "lock", "meta", "turns")

    def __init__(self, prefix: str, tenant: str, session_id: str) -> None:
        # A tenant is escaped to have no "}": its tag then ends at the first one, so no
        # session id (the client's choice) can make one tenant's key another's.
        tag = tenant.replace("%", "%25").replace("}", "%7D")
        base = f"{prefix}{{{tag}}}:"
        self.meta = f"{base}m:{session_id}"
        self.turns = f"{base}t:{session_id}"
        self.lock = f"{base}lock:{session_id}"
        self.index = base + "index"
        self.expiry = base + "expiry"


class RedisStore:
    """Sessions shared by every replica through one Redis."""

    def __init__(self, settings: SessionSettings, client: aioredis.Redis) -> None:
        self.settings = settings
        self._redis = client
        self._save = client.register_script(SAVE)
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)
        self._saves: Coalescer[_Save] = Coalescer(
            self._save_group, max_group=MAX_PIPELINE, name="redis-session-saves"
        )
        self._locks = Leases(self)
        self._health = HealthCheck(client.ping)
        self._closed = False

    @classmethod
    async def open(cls, url: str, settings: SessionSettings) -> Self:
        # Messages stay bytes: orjson reads them as they come, nothing to decode first.
        store = cls(settings, open_redis(url, decode_responses=False))
        try:
            with translate_redis_errors("connecting to the session store"):
                await store._redis.ping()
        except StateUnavailable:
            await store.close()
            raise
        return store

    def _keys(self, tenant: str, session_id: str) -> _Keys:
        if self._closed:
            raise StateUnavailable("the session store is closed")
        return _Keys(self.settings.key_prefix, tenant, session_id)

    async def load(self, tenant: str, session_id: str) -> Session | None:
        keys = self._keys(tenant, session_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hgetall(keys.meta)
        pipe.lrange(keys.turns, 0, -1)
        with translate_redis_errors("reading a session"):
            meta, parts = await pipe.execute()
        if not meta:
            return None
        system = meta.get(b"s")
        return Session(
            tenant=tenant,
            session_id=session_id,
            system=None if system is None else decode_value(system),
            messages=decode_messages(parts),
            version=int(meta[b"v"]),
            created=float(meta[b"c"]),
            updated=float(meta[b"u"]),
        )

    async def version(self, tenant: str, session_id: str) -> int:
        keys = self._keys(tenant, session_id)
        with translate_redis_errors("reading a session"):
            version = await self._redis.hget(keys.meta, "v")
        return 0 if version is None else int(version)

    async def append(
        self,
        tenant: str,
        session_id: str,
        messages: builtins.list[dict[str, Any]],
        *,
        expected_version: int,
        system: Any | None = None,
        ttl_seconds: float | None = None,
    ) -> int:
        ttl = ttl_seconds if ttl_seconds is not None else self.settings.ttl_seconds
        system_json = b"" if system is None else encode_value(system)
        return await self._write(
            "append", tenant, session_id, messages, expected_version, ttl, system_json
        )

    async def replace(
        self,
        tenant: str,
        session_id: str,
        messages: builtins.list[dict[str, Any]],
        *,
        expected_version: int,
    ) -> int:
        ttl = self.settings.ttl_seconds  # used only if it creates the session
        return await self._write("replace", tenant, session_id, messages, expected_version, ttl)

    async def _write(
        self,
        mode: str,
        tenant: str,
        session_id: str,
        messages: builtins.list[dict[str, Any]],
        expected: int,
        ttl: float | None,
        system_json: bytes = b"",
    ) -> int:
        parts = encode_messages(messages)
        keys = self._keys(tenant, session_id)
        ttl_ms = 0 if ttl is None else max(1, round(ttl * 1000))
        args: builtins.list[bytes | str | int] = [mode, expected, repr(time.time()), ttl_ms]
        args += [system_json, session_id, *parts]
        save = ((keys.meta, keys.turns, keys.index, keys.expiry), args)
        with translate_redis_errors("writing a session"):
            ok, version = await self._saves.submit(save)
        if not ok:
            raise SessionConflict(session_id, expected, int(version))
        return int(version)

    async def _save_group(self, saves: builtins.list[_Save]) -> builtins.list[Outcome]:
        """Run the save script once per item, all in one pipeline (not a transaction:
        each script is atomic on its own, and one refused save does not hold up others)."""
        replies = await self._pipeline_saves(saves)
        unknown = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if unknown:  # Redis restarted or its scripts were flushed: load it, send those again
            await self._redis.script_load(SAVE)
            again = await self._pipeline_saves([saves[i] for i in unknown])
            for i, reply in zip(unknown, again, strict=True):
                replies[i] = reply
        return [(isinstance(reply, Exception), reply) for reply in replies]

    async def _pipeline_saves(self, saves: builtins.list[_Save]) -> builtins.list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for keys, args in saves:
            pipe.evalsha(self._save.sha, len(keys), *keys, *args)
        replies: builtins.list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    async def delete(self, tenant: str, session_id: str) -> bool:
        keys = self._keys(tenant, session_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(keys.meta, keys.turns)
        pipe.zrem(keys.index, session_id)
        pipe.zrem(keys.expiry, session_id)
        with translate_redis_errors("deleting a session"):
            deleted, _, _ = await pipe.execute()
        return bool(deleted)

    def lock(
        self, tenant: str, session_id: str, *, wait: float, lease: float = 30.0
    ) -> AbstractAsyncContextManager[None]:
        return self._locks.lock(tenant, session_id, wait=wait, lease=lease)

    async def try_acquire(self, tenant: str, session_id: str, token: str, lease: float) -> bool:
        key = self._keys(tenant, session_id).lock
        with translate_redis_errors("locking a session"):
            return bool(await self._redis.set(key, token, nx=True, px=_ms(lease)))

    async def renew(self, tenant: str, session_id: str, token: str, lease: float) -> bool:
        key = self._keys(tenant, session_id).lock
        with translate_redis_errors("renewing a session lock"):
            return bool(await self._renew(keys=[key], args=[token, _ms(lease)]))

    async def release(self, tenant: str, session_id: str, token: str) -> None:
        key = self._keys(tenant, session_id).lock
        with translate_redis_errors("unlocking a session"):
            await self._release(keys=[key], args=[token])

    async def healthy(self) -> bool:
        return False if self._closed else await self._health.healthy()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._saves.drained()
        await self._locks.close()
        await self._health.close()
        await close_within(self._redis.aclose(), "the session store's Redis client")

    async def list(
        self, tenant: str, *, limit: int = 100, after: str | None = None
    ) -> builtins.list[SessionInfo]:
        """Walk the index from ``after``; entries of expired sessions (their hash gone,
        the index not yet cleaned by an append) are skipped."""
        index = self._keys(tenant, "").index
        low = b"-" if after is None else b"(" + after.encode()
        infos: builtins.list[SessionInfo] = []
        while len(infos) < limit:
            with translate_redis_errors("listing sessions"):
                found = await self._redis.zrangebylex(index, low, b"+", 0, limit - len(infos))
                ids = [raw if isinstance(raw, bytes) else raw.encode() for raw in found]
                if not ids:
                    break
                pipe = self._redis.pipeline(transaction=False)
                for raw in ids:
                    pipe.hmget(self._keys(tenant, raw.decode()).meta, [b"n", b"c", b"u"])
                metas = await pipe.execute()
            for raw, (turns, created, updated) in zip(ids, metas, strict=True):
                if turns is not None:
                    info = SessionInfo(raw.decode(), int(turns), float(created), float(updated))
                    infos.append(info)
            low = b"(" + ids[-1]
        return infos


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
