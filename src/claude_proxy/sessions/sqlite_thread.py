"""An SQLite connection on a thread of its own, and group commit of the writes sent to it.

A connection's calls block, so they run on one dedicated thread (SQLite connections are
not to be shared between threads). What costs is not SQLite but each hop between the
event loop and that thread (tens of microseconds of wake-ups and locks) and each commit's
``fsync``: a driver that makes one hop per statement (aiosqlite) spends five hops and one
fsync on an append. Here a write is one Python function run on the thread, and every write
queued while a transaction runs goes into the next transaction together: one hop and one
fsync for the whole group, each write in a savepoint of its own so that one refused write
(a version conflict) does not undo the others.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from claude_proxy.sessions.coalesce import Coalescer, Outcome

__all__ = ["GroupCommit", "SqliteThread"]

_T = TypeVar("_T")

MAX_GROUP = 256  # writes per transaction: bounds how long the file's write lock is held

Work = Callable[[sqlite3.Connection], Any]


class SqliteThread:
    """One ``sqlite3`` connection, used only from its own thread."""

    def __init__(self, executor: ThreadPoolExecutor, conn: sqlite3.Connection) -> None:
        self._executor = executor
        self._conn = conn

    @classmethod
    async def open(
        cls, path: str, *, busy_timeout: float, pragmas: tuple[str, ...]
    ) -> SqliteThread:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-sessions")

        def connect() -> sqlite3.Connection:
            # Autocommit mode: transactions are the explicit BEGIN/COMMIT of the callers.
            conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
            try:
                for pragma in pragmas:
                    conn.execute(pragma).fetchall()
            except BaseException:
                conn.close()
                raise
            return conn

        try:
            conn = await asyncio.get_running_loop().run_in_executor(executor, connect)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(executor, conn)

    async def run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """``work(connection)`` on the connection's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, self._conn)

    async def close(self) -> None:
        try:
            await self.run(sqlite3.Connection.close)
        finally:
            self._executor.shutdown(wait=False)


class GroupCommit:
    """Write transactions on a :class:`SqliteThread`, those queued together committed as one."""

    def __init__(self, thread: SqliteThread) -> None:
        self._thread = thread
        self._groups: Coalescer[Work] = Coalescer(
            self._commit, max_group=MAX_GROUP, name="sqlite-group-commit"
        )

    async def write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work(connection)`` inside a ``BEGIN IMMEDIATE`` transaction, with others.

        An exception ``work`` raises undoes its own changes only and is raised here; an
        error of the transaction itself (the commit) is raised to every write in it.
        """
        result: _T = await self._groups.submit(work)
        return result

    async def drained(self) -> None:
        await self._groups.drained()

    async def _commit(self, works: list[Work]) -> list[Outcome]:
        return await self._thread.run(functools.partial(_transaction, works=works))


def _transaction(conn: sqlite3.Connection, works: list[Work]) -> list[Outcome]:
    """On the thread: one transaction, each write in a savepoint; (failed, value) each."""
    outcomes: list[Outcome] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for work in works:
            conn.execute("SAVEPOINT one_write")
            try:
                value = work(conn)
            except Exception as exc:  # the writer's own failure: undone alone
                conn.execute("ROLLBACK TO one_write")
                conn.execute("RELEASE one_write")
                outcomes.append((True, exc))
            else:
                conn.execute("RELEASE one_write")
                outcomes.append((False, value))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes
