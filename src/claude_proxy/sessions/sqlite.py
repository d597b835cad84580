"""Sessions in an SQLite file: the embedded default, shared by the worker processes of a host.

The file is opened in WAL mode: readers never wait for the writer, and writers of several
processes take turns (``busy_timeout``). Each process holds two connections, each on a
thread of its own (``sqlite_thread``): one for writes, which run as ``BEGIN IMMEDIATE``
transactions with group commit (the writes queued while one transaction runs share the
next: one thread hop and one flush for all, which is what takes an append from ~500 to
thousands per second), and one for reads, each a single ``SELECT`` and so a consistent
snapshot of committed data. ``synchronous=FULL`` makes a commit reach the disk before it
returns, so a completed append survives the process being killed, and the host losing power.

Schema version 1 (``schema_version`` holds the number, for later migrations)::

    sessions  (tenant, session_id) -> system JSON, version, turns, created, updated,
              expires (unix seconds; NULL: kept)
    turns     (tenant, session_id, seq) -> message JSON; deleted with their session
    leases    (tenant, session_id) -> token, expires: the session locks of every process

Expired sessions are invisible at once and deleted in the background.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Self, TypeVar
from urllib.parse import unquote, urlsplit

from claude_proxy.sessions.base import Session, SessionConflict, SessionInfo, SessionSettings
from claude_proxy.sessions.codec import decode_messages, decode_value, encode_messages, encode_value
from claude_proxy.sessions.leases import Leases
from claude_proxy.sessions.maintenance import Purger
from claude_proxy.sessions.sqlite_sql import (
    APPEND,
    CLEAR_TURNS,
    CREATE,
    CURRENT,
    DELETE,
    DELETE_ONE,
    INSERT_TURN,
    LEASE_ACQUIRE,
    LEASE_RELEASE,
    LEASE_RENEW,
    LIST,
    LOAD,
    PURGE_LEASES,
    PURGE_SESSIONS,
    REPLACE,
    SCHEMA,
    SCHEMA_TABLE,
    SCHEMA_VERSION,
    VERSION,
)
from claude_proxy.sessions.sqlite_thread import GroupCommit, SqliteThread
from claude_proxy.state import StateUnavailable
from claude_proxy.state.health import HealthCheck

__all__ = ["SqliteStore", "sqlite_path"]

_log = logging.getLogger("claude_proxy.sessions")
_T = TypeVar("_T")

BUSY_TIMEOUT_SECONDS = 5.0  # how long a write waits for another process's transaction
PRAGMAS = ("PRAGMA foreign_keys=ON", "PRAGMA synchronous=FULL")
PURGE_BATCH = 500  # expired sessions deleted per transaction, so writers are not held up
CLOSE_SECONDS = 1.0

Conn = sqlite3.Connection


def sqlite_path(url: str) -> str:
    """The file of ``sqlite:///relative/path``, ``sqlite:////absolute/path`` or
    ``sqlite://:memory:``."""
    parts = urlsplit(url)
    if parts.netloc == ":memory:":
        return ":memory:"
    if parts.netloc:
        raise ValueError("an sqlite URL has no host: sqlite:///relative or sqlite:////absolute")
    path = unquote(parts.path[1:])
    if not path:
        raise ValueError("an sqlite URL needs a path: sqlite:///claude-proxy-sessions.db")
    return path


@contextlib.contextmanager
def _translate(action: str) -> Iterator[None]:
    """Re-raise SQLite and file errors as :class:`StateUnavailable` (the path never included)."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise StateUnavailable(
            f"The session store is unavailable while {action}; retry shortly."
        ) from exc


class SqliteStore:
    """Sessions in one SQLite file, shared by the processes that open it."""

    def __init__(
        self, settings: SessionSettings, writer: SqliteThread, reader: SqliteThread
    ) -> None:
        self.settings = settings
        self._writer = writer
        self._reader = reader
        self._writes = GroupCommit(writer)
        self._locks = Leases(self)
        self._health = HealthCheck(self._probe)
        self._purger = Purger(self._purge, _log, "the SQLite session store")
        self._closed = False

    @classmethod
    async def open(cls, url: str, settings: SessionSettings) -> Self:
        path = sqlite_path(url)
        opened: list[SqliteThread] = []
        try:
            with _translate("opening the database"):
                writer = await SqliteThread.open(
                    path, busy_timeout=BUSY_TIMEOUT_SECONDS, pragmas=PRAGMAS
                )
                opened.append(writer)
                await writer.run(_migrate)
                if path == ":memory:":
                    # An in-memory database is private to its connection: reads share the
                    # writer's thread, where they never see a transaction half done.
                    reader = writer
                else:
                    reader = await SqliteThread.open(
                        path, busy_timeout=BUSY_TIMEOUT_SECONDS, pragmas=PRAGMAS
                    )
                    opened.append(reader)
        except BaseException:
            for thread in opened:
                with contextlib.suppress(Exception):
                    await thread.close()
            raise
        store = cls(settings, writer, reader)
        store._purger.start()
        return store

    async def load(self, tenant: str, session_id: str) -> Session | None:
        params = (tenant, session_id, time.time())
        rows = await self._read("reading a session", LOAD, params)
        if not rows:
            return None
        system, version, created, updated, _ = rows[0]
        return Session(
            tenant=tenant,
            session_id=session_id,
            system=None if system is None else decode_value(system),
            messages=decode_messages(row[4] for row in rows if row[4] is not None),
            version=version,
            created=created,
            updated=updated,
        )

    async def version(self, tenant: str, session_id: str) -> int:
        rows = await self._read("reading a session", VERSION, (tenant, session_id, time.time()))
        return int(rows[0][0]) if rows else 0

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
        parts = encode_messages(messages)
        system_json = None if system is None else encode_value(system).decode()
        ttl = ttl_seconds if ttl_seconds is not None else self.settings.ttl_seconds

        def transaction(conn: Conn) -> int:
            now = time.time()
            version, turns = _current(conn, tenant, session_id, expected_version, now)
            expires = None if ttl is None else now + ttl
            if version == 0:
                conn.execute(
                    CREATE, (tenant, session_id, system_json, len(parts), now, now, expires)
                )
            else:
                conn.execute(APPEND, (system_json, len(parts), now, expires, tenant, session_id))
            _insert_turns(conn, tenant, session_id, turns, parts)
            return version + 1

        return await self._write("appending to a session", transaction)

    async def replace(
        self,
        tenant: str,
        session_id: str,
        messages: builtins.list[dict[str, Any]],
        *,
        expected_version: int,
    ) -> int:
        parts = encode_messages(messages)
        ttl = self.settings.ttl_seconds

        def transaction(conn: Conn) -> int:
            now = time.time()
            version, _ = _current(conn, tenant, session_id, expected_version, now)
            if version == 0:
                expires = None if ttl is None else now + ttl
                conn.execute(CREATE, (tenant, session_id, None, len(parts), now, now, expires))
            else:
                conn.execute(CLEAR_TURNS, (tenant, session_id))
                conn.execute(REPLACE, (len(parts), now, tenant, session_id))
            _insert_turns(conn, tenant, session_id, 0, parts)
            return version + 1

        return await self._write("replacing a session", transaction)

    async def delete(self, tenant: str, session_id: str) -> bool:
        def transaction(conn: Conn) -> bool:
            rows = conn.execute(DELETE, (tenant, session_id)).fetchall()
            now = time.time()
            return any(expires is None or expires > now for (expires,) in rows)

        return await self._write("deleting a session", transaction)

    def lock(
        self, tenant: str, session_id: str, *, wait: float, lease: float = 30.0
    ) -> AbstractAsyncContextManager[None]:
        return self._locks.lock(tenant, session_id, wait=wait, lease=lease)

    async def try_acquire(self, tenant: str, session_id: str, token: str, lease: float) -> bool:
        def statement(conn: Conn) -> bool:
            now = time.time()
            params = (tenant, session_id, token, now + lease, now)
            return bool(conn.execute(LEASE_ACQUIRE, params).fetchall())

        return await self._write("locking a session", statement)

    async def renew(self, tenant: str, session_id: str, token: str, lease: float) -> bool:
        def statement(conn: Conn) -> bool:
            params = (time.time() + lease, tenant, session_id, token)
            return bool(conn.execute(LEASE_RENEW, params).fetchall())

        return await self._write("renewing a session lock", statement)

    async def release(self, tenant: str, session_id: str, token: str) -> None:
        def statement(conn: Conn) -> None:
            conn.execute(LEASE_RELEASE, (tenant, session_id, token))

        await self._write("unlocking a session", statement)

    async def healthy(self) -> bool:
        return False if self._closed else await self._health.healthy()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._purger.close()
        await self._locks.close()
        await self._health.close()
        await self._writes.drained()  # the writes in flight (a lock's release) end first
        for thread in {id(t): t for t in (self._reader, self._writer)}.values():
            try:
                async with asyncio.timeout(CLOSE_SECONDS):
                    await thread.close()
            except (sqlite3.Error, OSError) as exc:  # TimeoutError is an OSError
                _log.warning("closing the SQLite session store failed: %r", exc)

    async def _probe(self) -> None:
        await self._read("checking the database", "SELECT 1", ())

    async def _read(self, action: str, sql: str, params: tuple[Any, ...]) -> list[Any]:
        if self._closed:
            raise StateUnavailable("the session store is closed")
        with _translate(action):
            return await self._reader.run(lambda conn: conn.execute(sql, params).fetchall())

    async def _write(self, action: str, transaction: Callable[[Conn], _T]) -> _T:
        """Run ``transaction`` on the writer, committed with the other writes queued with it."""
        if self._closed:
            raise StateUnavailable("the session store is closed")
        with _translate(action):
            return await self._writes.write(transaction)

    async def _purge(self) -> None:
        """Delete expired sessions (their turns with them) and expired leases, in batches."""

        def batch(conn: Conn) -> int:
            now = time.time()
            conn.execute(PURGE_LEASES, (now,))
            return len(conn.execute(PURGE_SESSIONS, (now, PURGE_BATCH)).fetchall())

        while await self._write("deleting expired sessions", batch) == PURGE_BATCH:
            pass

    async def list(
        self, tenant: str, *, limit: int = 100, after: str | None = None
    ) -> builtins.list[SessionInfo]:
        params = (tenant, after if after is not None else "", time.time(), max(limit, 0))
        rows = await self._read("listing sessions", LIST, params)
        return [SessionInfo(*row) for row in rows]


def _migrate(conn: Conn) -> None:
    """Create the schema on first start; refuse a database a newer gateway has migrated."""
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(SCHEMA_TABLE)
        version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"the session database has schema version {version}; this gateway knows "
                f"up to {SCHEMA_VERSION}: upgrade it"
            )
        if version == 0:
            for statement in SCHEMA:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _current(
    conn: Conn, tenant: str, session_id: str, expected: int, now: float
) -> tuple[int, int]:
    """The live session's (version, turns), (0, 0) if there is none (an expired one is
    deleted); raises ``SessionConflict`` unless its version is ``expected``."""
    key = (tenant, session_id)
    row = conn.execute(CURRENT, key).fetchone()
    version = turns = 0
    if row is not None:
        if row[2] is None or row[2] > now:
            version, turns = row[0], row[1]
        else:
            conn.execute(DELETE_ONE, key)
    if version != expected:
        raise SessionConflict(session_id, expected, version)
    return version, turns


def _insert_turns(
    conn: Conn, tenant: str, session_id: str, first: int, parts: builtins.list[bytes]
) -> None:
    if parts:
        rows = [(tenant, session_id, first + i, part.decode()) for i, part in enumerate(parts)]
        conn.executemany(INSERT_TURN, rows)
