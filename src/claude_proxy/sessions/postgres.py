"""Sessions in PostgreSQL (asyncpg), shared by every replica.

Tables live in the connection's ``search_path``: choose a schema with
``postgresql://…/db?search_path=sessions`` (asyncpg passes unknown URL parameters on as
server settings). Schema version 1, created on first start under an advisory lock (so
that replicas starting together do not race), its number kept in
``claude_proxy_session_schema`` for later migrations::

    claude_proxy_sessions       (tenant, session_id) -> system, version, turns, created,
                                updated, expires (unix seconds by the server's clock)
    claude_proxy_session_turns  (tenant, session_id, seq) -> message; cascade on delete
    claude_proxy_session_leases (tenant, session_id) -> token, expires

Messages are ``json``, not ``jsonb``: ``json`` keeps each message byte for byte (``jsonb``
reorders keys), so a resent conversation stays a byte-identical prompt prefix.
``session_id`` collates as ``"C"`` so that listing pages in code point order, as every
other backend does, whatever the database's collation.

Every time is the server's (``clock_timestamp()``), so replicas with skewed clocks agree
on expiries and leases. A version check is the ``WHERE`` of the ``UPDATE`` that bumps the
version: a concurrent writer waits for the row lock, then finds the version changed.

Locks are lease rows, not advisory locks. An advisory lock belongs to one connection:
holding one for a whole stream would pin a pooled connection per streaming request (the
pool runs dry under load), and a dropped connection releases it silently while its holder
goes on. A lease row costs one short statement per acquire and renewal, holds no
connection, and expires like the SQLite and Redis leases when its holder dies.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Self

import asyncpg

from claude_proxy.sessions.base import Session, SessionConflict, SessionInfo, SessionSettings
from claude_proxy.sessions.codec import decode_messages, decode_value, encode_messages, encode_value
from claude_proxy.sessions.leases import Leases
from claude_proxy.sessions.maintenance import Purger
from claude_proxy.sessions.postgres_sql import (
    APPEND,
    CLEAR_TURNS,
    CREATE,
    DELETE,
    DELETE_EXPIRED,
    INSERT_TURNS,
    LEASE_ACQUIRE,
    LEASE_RELEASE,
    LEASE_RENEW,
    LIST,
    LOAD,
    MIGRATION_LOCK,
    PURGE_LEASES,
    PURGE_SESSIONS,
    REPLACE,
    SCHEMA,
    SCHEMA_TABLE,
    SCHEMA_VERSION,
    VERSION,
)
from claude_proxy.state import StateUnavailable
from claude_proxy.state.health import HealthCheck

__all__ = ["PostgresStore"]

_log = logging.getLogger("claude_proxy.sessions")

# Statements are short: a server that does not answer within this is treated as down.
COMMAND_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5.0
POOL_MIN = 1
POOL_MAX = 16
CLOSE_SECONDS = 1.0
PURGE_BATCH = 500


@contextlib.contextmanager
def _translate(action: str) -> Iterator[None]:
    """Re-raise asyncpg and network errors as :class:`StateUnavailable` (no URL, no password)."""
    try:
        yield
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise StateUnavailable(
            f"The session store is unavailable while {action}; retry shortly."
        ) from exc


class PostgresStore:
    """Sessions in PostgreSQL tables, through a connection pool."""

    def __init__(self, settings: SessionSettings, pool: asyncpg.Pool) -> None:
        self.settings = settings
        self._pool = pool
        self._locks = Leases(self)
        self._health = HealthCheck(self._probe)
        self._purger = Purger(self._purge, _log, "the PostgreSQL session store")
        self._closed = False

    @classmethod
    async def open(cls, url: str, settings: SessionSettings) -> Self:
        with _translate("connecting to the database"):
            pool = await asyncpg.create_pool(
                url,
                min_size=POOL_MIN,
                max_size=POOL_MAX,
                timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
            )
        store = cls(settings, pool)
        try:
            await store._migrate()
        except BaseException:
            await store.close()
            raise
        store._purger.start()
        return store

    async def load(self, tenant: str, session_id: str) -> Session | None:
        with _translate("reading a session"):
            rows = await self._pool.fetch(LOAD, tenant, session_id)
        if not rows:
            return None
        first = rows[0]
        system = first["system"]
        return Session(
            tenant=tenant,
            session_id=session_id,
            system=None if system is None else decode_value(system),
            messages=decode_messages(row["message"] for row in rows if row["message"] is not None),
            version=first["version"],
            created=first["created"],
            updated=first["updated"],
        )

    async def version(self, tenant: str, session_id: str) -> int:
        with _translate("reading a session"):
            version = await self._pool.fetchval(VERSION, tenant, session_id)
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
        parts = [part.decode() for part in encode_messages(messages)]
        system_json = None if system is None else encode_value(system).decode()
        ttl = ttl_seconds if ttl_seconds is not None else self.settings.ttl_seconds
        with _translate("appending to a session"):
            async with self._pool.acquire() as conn, conn.transaction():
                if expected_version == 0:
                    await conn.execute(DELETE_EXPIRED, tenant, session_id)
                    row = await conn.fetchrow(
                        CREATE, tenant, session_id, system_json, len(parts), ttl
                    )
                else:
                    row = await conn.fetchrow(
                        APPEND, tenant, session_id, expected_version, system_json, len(parts), ttl
                    )
                if row is None:
                    raise SessionConflict(session_id, expected_version)
                await conn.execute(INSERT_TURNS, tenant, session_id, row["first"], parts)
        return int(row["version"])

    async def replace(
        self,
        tenant: str,
        session_id: str,
        messages: builtins.list[dict[str, Any]],
        *,
        expected_version: int,
    ) -> int:
        parts = [part.decode() for part in encode_messages(messages)]
        with _translate("replacing a session"):
            async with self._pool.acquire() as conn, conn.transaction():
                if expected_version == 0:
                    await conn.execute(DELETE_EXPIRED, tenant, session_id)
                    row = await conn.fetchrow(
                        CREATE, tenant, session_id, None, len(parts), self.settings.ttl_seconds
                    )
                else:
                    row = await conn.fetchrow(
                        REPLACE, tenant, session_id, expected_version, len(parts)
                    )
                    if row is not None:
                        await conn.execute(CLEAR_TURNS, tenant, session_id)
                if row is None:
                    raise SessionConflict(session_id, expected_version)
                await conn.execute(INSERT_TURNS, tenant, session_id, 0, parts)
        return int(row["version"])

    async def delete(self, tenant: str, session_id: str) -> bool:
        with _translate("deleting a session"):
            alive = await self._pool.fetchval(DELETE, tenant, session_id)
        return bool(alive)

    def lock(
        self, tenant: str, session_id: str, *, wait: float, lease: float = 30.0
    ) -> AbstractAsyncContextManager[None]:
        return self._locks.lock(tenant, session_id, wait=wait, lease=lease)

    async def try_acquire(self, tenant: str, session_id: str, token: str, lease: float) -> bool:
        with _translate("locking a session"):
            held = await self._pool.fetchval(LEASE_ACQUIRE, tenant, session_id, token, lease)
        return held is not None

    async def renew(self, tenant: str, session_id: str, token: str, lease: float) -> bool:
        with _translate("renewing a session lock"):
            held = await self._pool.fetchval(LEASE_RENEW, tenant, session_id, token, lease)
        return held is not None

    async def release(self, tenant: str, session_id: str, token: str) -> None:
        with _translate("unlocking a session"):
            await self._pool.execute(LEASE_RELEASE, tenant, session_id, token)

    async def healthy(self) -> bool:
        return False if self._closed else await self._health.healthy()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._purger.close()
        await self._locks.close()
        await self._health.close()
        try:
            async with asyncio.timeout(CLOSE_SECONDS):
                await self._pool.close()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            _log.warning("closing the PostgreSQL session store failed: %r", exc)
            self._pool.terminate()

    async def _probe(self) -> None:
        await self._pool.fetchval("SELECT 1")

    async def _migrate(self) -> None:
        """Create the tables on first start; refuse tables a newer gateway has migrated."""
        with _translate("creating the session tables"):
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(MIGRATION_LOCK)
                try:
                    await conn.execute(SCHEMA_TABLE)
                except asyncpg.InvalidSchemaNameError:  # a mistake to fix, not an outage
                    raise RuntimeError(
                        "no schema of the session store's search_path exists: create it"
                    ) from None
                version = await conn.fetchval(
                    "SELECT max(version) FROM claude_proxy_session_schema"
                )
                if version is None:
                    for statement in SCHEMA:
                        await conn.execute(statement)
                    await conn.execute(
                        "INSERT INTO claude_proxy_session_schema VALUES ($1)", SCHEMA_VERSION
                    )
        if version is not None and version > SCHEMA_VERSION:
            raise RuntimeError(
                f"the session tables have schema version {version}; this gateway knows "
                f"up to {SCHEMA_VERSION}: upgrade it"
            )

    async def _purge(self) -> None:
        """Delete expired leases, then expired sessions (their turns cascade) in batches."""
        with _translate("deleting expired sessions"):
            await self._pool.execute(PURGE_LEASES)
            while True:
                status = await self._pool.execute(PURGE_SESSIONS, PURGE_BATCH)
                if int(status.split()[-1]) < PURGE_BATCH:
                    return

    async def list(
        self, tenant: str, *, limit: int = 100, after: str | None = None
    ) -> builtins.list[SessionInfo]:
        with _translate("listing sessions"):
            rows = await self._pool.fetch(LIST, tenant, after, max(limit, 0))
        return [SessionInfo(row[0], row[1], row[2], row[3]) for row in rows]
