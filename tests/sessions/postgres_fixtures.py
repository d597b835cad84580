"""The test PostgreSQL: a schema of each test's own, dropped afterwards.

Synchronous, like ``tests.state.redis_fixtures``, so that parametrized async fixtures can
reach it through ``request.getfixturevalue`` only when the PostgreSQL backend is selected;
the asyncpg calls run on a thread of their own, off the test's event loop.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import pytest

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, coroutine).result()


async def _execute(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL, timeout=2)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The test database with a fresh schema first on the search path; skipped when
    PostgreSQL is not running, but a failure on CI."""
    schema = f"test_sessions_{uuid.uuid4().hex[:16]}"
    try:
        _run(_execute(f'CREATE SCHEMA "{schema}"'))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        message = f"PostgreSQL not reachable at 127.0.0.1:5432: {exc!r}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    yield f"{POSTGRES_URL}?search_path={schema}"
    _run(_execute(f'DROP SCHEMA "{schema}" CASCADE'))
