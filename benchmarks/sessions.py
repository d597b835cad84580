"""Session stores: turn writes and reads per second, the latency a session adds to a
request, and the memory of a full LRU cache.

    python benchmarks/sessions.py            # about 3 minutes
    python benchmarks/sessions.py --quick    # about 30 s

Backends: SQLite (a file in a temporary directory, WAL, ``synchronous=FULL``),
PostgreSQL at ``postgresql://postgres@127.0.0.1:5432/test`` (a schema of its own, dropped
afterwards) and Redis at ``redis://127.0.0.1:6379/0`` (a key prefix of its own, its keys
deleted afterwards). A server that is not running is skipped with a note. Every store
runs in this process, on loopback. A "turn write" is one append (a user turn and its
answer); a session's length in turns counts its stored messages, as ``SessionInfo.turns``
does.

1. Store throughput, no cache (``cache_size: 0``: the store's own figure). A write is one
   ``append`` of a user turn and an assistant answer of 300 characters, with the version
   check (each task keeps its session's version; a session is started afresh every 100
   appends, so none grows past 200 turns). A read is one ``load`` of a session of 10
   turns. Concurrency 1 is one task; concurrency 64 is 64 asyncio tasks, each on a
   session of its own. Each cell runs a few seconds; 3 rounds, the cells of every
   backend interleaved within a round; medians of the rounds.
   Targets: >= 2,000 turn writes/s on SQLite at concurrency 64, and more on Redis.
2. Latency added by a session: a gateway (simulator with speed 0, echoing, both in this
   process) answers ``/v1/messages`` either with ``x-session-id`` and the new turn only
   (a stored history of 50 turns is prepended) or without a session, the client sending
   the same 50 turns itself: the upstream receives the same body either way (checked).
   Requests alternate between the two, one at a time; medians over a few hundred of
   each. With the LRU cache hit (``cache_size`` large, the sessions written through the
   gateway's own store) and missed (``cache_size: 0``). A session request also takes and
   releases the session's lock and appends the turn and its answer, whatever the cache.
   The disk's own ceiling is printed beside the table: plain ``sqlite3`` commits/s with
   the store's settings (WAL, ``synchronous=FULL``), one transaction per append.
3. Memory: the RSS (``VmRSS``) of a fresh process before and after it loads 10,000
   SQLite sessions of 4 turns (~900 bytes of JSON each) through a ``CachedStore`` of
   10,000 (``--quick``: 2,000), and what the allocator gives each cached message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from claude_proxy.app import create_app  # noqa: E402
from claude_proxy.config import LogSettings, Settings, UpstreamSettings  # noqa: E402
from claude_proxy.server import start_server  # noqa: E402
from claude_proxy.services import SERVICES  # noqa: E402
from claude_proxy.sessions import (  # noqa: E402
    CachedStore,
    SessionSettings,
    SessionStore,
    open_store,
)
from claude_proxy.sessions.codec import encode_messages  # noqa: E402
from claude_proxy.sim import JOURNAL, SimSettings, create_sim_app  # noqa: E402
from claude_proxy.tenancy import DEFAULT_TENANT  # noqa: E402

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
KEY = "sk-ant-bench-sessions"
HEADERS = {"x-api-key": "client", "anthropic-version": "2023-06-01"}
MODEL = "claude-haiku-4-5"
TENANT = DEFAULT_TENANT  # the gateway's tenant when none are configured
CONCURRENCY = (1, 64)
ROTATE = 100  # appends per session before a task starts a new one
READ_TURNS = 10
HISTORY_TURNS = 50
CACHED_SESSIONS = 10_000
CACHED_TURNS = 4
TARGET_SQLITE_WRITES = 2_000.0

_PROSE = (
    "the gateway keeps each conversation by its session id and sends the stored turns "
    "before the new one so that a client need only send what it has to say now while "
    "every replica sees the same history through the shared store with its version check"
)
_WORDS = _PROSE.split()


def _text(seed: int, chars: int) -> str:
    words = [_WORDS[(seed * 7 + i * 3) % len(_WORDS)] for i in range(chars // 3)]
    return f"{seed}: {' '.join(words)}"[:chars]


def _pair(seed: int) -> list[dict[str, Any]]:
    """A user turn and an assistant answer of 300 characters."""
    return [
        {"role": "user", "content": _text(seed, 80)},
        {"role": "assistant", "content": [{"type": "text", "text": _text(seed + 1, 300)}]},
    ]


PAIRS = [_pair(seed) for seed in range(32)]


def _history(turns: int, seed: int = 0) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while len(messages) < turns:
        messages += PAIRS[(seed + len(messages) // 2) % len(PAIRS)]
    return messages[:turns]


def _rss_mb() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the peak, on Linux


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the backends ----------------------------------------------------------------------


@dataclass
class Backend:
    name: str
    url: str
    key_prefix: str = "claude-proxy:sessions:"
    cleanup: Callable[[], Awaitable[None]] | None = None

    def settings(self, **fields: Any) -> SessionSettings:
        return SessionSettings(url=self.url, key_prefix=self.key_prefix, **fields)

    async def open(self, **fields: Any) -> SessionStore:
        settings = self.settings(**fields)
        return await open_store(settings.url, settings)


async def _postgres() -> Backend:
    import asyncpg

    schema = f"bench_sessions_{uuid.uuid4().hex[:12]}"

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=2)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await execute(f'CREATE SCHEMA "{schema}"')
    return Backend(
        "postgresql",
        f"{POSTGRES_URL}?search_path={schema}",
        cleanup=lambda: execute(f'DROP SCHEMA "{schema}" CASCADE'),
    )


async def _redis() -> Backend:
    from redis import asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=5)
    try:
        await client.ping()
    finally:
        await client.aclose()
    prefix = f"bench:claude-proxy:{uuid.uuid4().hex}:"

    async def delete_keys() -> None:
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            batch = []
            async for key in client.scan_iter(match=prefix + "*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    await client.delete(*batch)
                    batch = []
            if batch:
                await client.delete(*batch)
        finally:
            await client.aclose()

    return Backend("redis", REDIS_URL, key_prefix=prefix, cleanup=delete_keys)


async def backends(directory: Path) -> tuple[list[Backend], list[str]]:
    found = [Backend("sqlite", f"sqlite:///{directory / 'sessions.db'}")]
    notes = []
    for name, make in (("postgresql", _postgres), ("redis", _redis)):
        try:
            found.append(await make())
        except Exception as exc:  # not installed, not running, refused: skipped
            notes.append(f"{name}: skipped, not reachable ({type(exc).__name__}: {exc})")
    return found, notes


# --- 1. throughput ---------------------------------------------------------------------


async def _cell(tasks: int, seconds: float, work: Callable[[int], Awaitable[None]]) -> float:
    """Operations per second of ``tasks`` tasks each calling ``work(task)`` until the end."""
    deadline = time.perf_counter() + seconds
    counts = [0] * tasks

    async def worker(task: int) -> None:
        while time.perf_counter() < deadline:
            await work(task)
            counts[task] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(task) for task in range(tasks)))
    return sum(counts) / (time.perf_counter() - started)


async def writes_per_second(store: SessionStore, tag: str, tasks: int, seconds: float) -> float:
    done = [0] * tasks
    versions = [0] * tasks

    async def write(task: int) -> None:
        n = done[task]
        if n % ROTATE == 0:
            versions[task] = 0
        session_id = f"{tag}-{task}-{n // ROTATE}"
        versions[task] = await store.append(
            TENANT, session_id, PAIRS[n % len(PAIRS)], expected_version=versions[task]
        )
        done[task] = n + 1

    return await _cell(tasks, seconds, write)


async def reads_per_second(store: SessionStore, tasks: int, seconds: float) -> float:
    async def read(task: int) -> None:
        session = await store.load(TENANT, f"read-{task}")
        assert session is not None
        assert len(session.messages) == READ_TURNS

    return await _cell(tasks, seconds, read)


def sqlite_commit_ceiling(directory: Path, seconds: float) -> float:
    """Commits/s of plain ``sqlite3`` on the same disk, with the store's settings (WAL,
    ``synchronous=FULL``), each inserting two rows of 300 characters: what one
    transaction per append can reach at best here."""
    path = directory / f"ceiling-{uuid.uuid4().hex[:8]}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE turns (seq INTEGER PRIMARY KEY, message TEXT)")
        text = _text(0, 300)
        done = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO turns (message) VALUES (?)", [(text,), (text,)])
            conn.execute("COMMIT")
            done += 1
        return done / (time.perf_counter() - started)
    finally:
        conn.close()


@dataclass
class Throughput:
    cells: dict[tuple[str, str, int], list[float]] = field(default_factory=dict)
    ceiling: list[float] = field(default_factory=list)

    def median(self, backend: str, op: str, tasks: int) -> float:
        return _median(self.cells.get((backend, op, tasks), []))


async def throughput(
    targets: list[Backend], rounds: int, seconds: float, directory: Path
) -> Throughput:
    result = Throughput()
    stores = {}
    try:
        for target in targets:
            store = stores[target.name] = await target.open(cache_size=0)
            for task in range(max(CONCURRENCY)):
                await store.append(
                    TENANT, f"read-{task}", _history(READ_TURNS, task), expected_version=0
                )
            # Warm-up: connections opened, statements prepared, scripts loaded.
            await writes_per_second(store, "warm", 8, seconds / 4)
            await reads_per_second(store, 8, seconds / 4)
        for index in range(rounds):
            result.ceiling.append(sqlite_commit_ceiling(directory, seconds / 2))
            for target in targets:
                store = stores[target.name]
                line = []
                for tasks in CONCURRENCY:
                    tag = f"w{index}c{tasks}"
                    for op, rate in (
                        ("write", writes_per_second(store, tag, tasks, seconds)),
                        ("read", reads_per_second(store, tasks, seconds)),
                    ):
                        value = await rate
                        result.cells.setdefault((target.name, op, tasks), []).append(value)
                        line.append(f"{op} c{tasks} {value:,.0f}/s")
                _note(f"  round {index + 1}/{rounds} {target.name}: {', '.join(line)}")
    finally:
        for store in stores.values():
            await store.close()
    return result


# --- 2. latency added ------------------------------------------------------------------


@dataclass
class Latency:
    backend: str
    cache: str
    without: list[float]
    with_session: list[float]

    @property
    def added(self) -> float:
        return _median(self.with_session) - _median(self.without)


async def _timed(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str]
) -> float:
    started = time.perf_counter()
    async with http.post(f"{url}/v1/messages", json=body, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {await response.text()}")
    return time.perf_counter() - started


async def added_latency(
    target: Backend, cached: bool, sim: Any, http: aiohttp.ClientSession, requests: int
) -> Latency:
    cache = "hit" if cached else "miss"
    sessions = target.settings(cache_size=100_000 if cached else 0, cache_ttl_seconds=3600.0)
    settings = Settings(
        upstreams=[UpstreamSettings(name="sim", base_url=sim.url, api_key=KEY)],
        sessions=sessions,
        log=LogSettings(level="warning"),  # no request log lines among the tables
    )
    gateway = await start_server(create_app(settings), "127.0.0.1", 0, shutdown_timeout=0.1)
    try:
        store = gateway.runner.app[SERVICES].sessions
        assert store is not None
        assert isinstance(store, CachedStore) == cached
        warm = 20
        history = _history(HISTORY_TURNS)
        ids = [f"latency-{cache}-{n}" for n in range(warm + requests)]
        # Written through the gateway's own store: with the cache on, each is cached.
        for start in range(0, len(ids), 64):
            await asyncio.gather(
                *(store.append(TENANT, s, history, expected_version=0) for s in ids[start:][:64])
            )
        journal = sim.runner.app[JOURNAL]
        without: list[float] = []
        with_session: list[float] = []
        for n, session_id in enumerate(ids):
            turn = {"role": "user", "content": _text(1000 + n, 80)}
            plain = {"model": MODEL, "max_tokens": 200, "messages": [*history, turn]}
            own = {"model": MODEL, "max_tokens": 200, "messages": [turn]}
            calls = [
                (without, plain, HEADERS),
                (with_session, own, {**HEADERS, "x-session-id": session_id}),
            ]
            if n % 2:
                calls.reverse()  # neither goes first every time
            for times, body, headers in calls:
                seconds = await _timed(http, gateway.url, body, headers)
                if n >= warm:
                    times.append(seconds)
            if n == 0:  # the upstream saw the same conversation either way
                first, second = (entry.body for entry in list(journal.entries)[-2:])
                assert first["messages"] == second["messages"], "bodies differ upstream"
                assert len(first["messages"]) == HISTORY_TURNS + 1
    finally:
        await gateway.stop()
    return Latency(target.name, cache, without, with_session)


async def latencies(targets: list[Backend], requests: int) -> list[Latency]:
    sim = await start_server(
        create_sim_app(SimSettings(api_key=KEY, speed=0.0, echo=True, journal=4)),
        "127.0.0.1",
        0,
        shutdown_timeout=0.1,
    )
    results = []
    try:
        async with aiohttp.ClientSession() as http:
            for target in targets:
                for cached in (True, False):
                    result = await added_latency(target, cached, sim, http, requests)
                    results.append(result)
                    _note(
                        f"  latency {target.name} cache {result.cache}: "
                        f"added {result.added * 1000:.2f} ms"
                    )
    finally:
        await sim.stop()
    return results


# --- 3. memory -------------------------------------------------------------------------


async def seed_cached_sessions(url: str, count: int) -> None:
    """``count`` sessions of ``CACHED_TURNS`` turns for the memory child to load."""
    store = await open_store(url, SessionSettings(url=url, cache_size=0))
    try:
        for start in range(0, count, 64):
            await asyncio.gather(
                *(
                    store.append(TENANT, f"m-{n}", _history(CACHED_TURNS, n), expected_version=0)
                    for n in range(start, min(start + 64, count))
                )
            )
    finally:
        await store.close()


async def _memory_child(url: str, count: int) -> dict[str, float]:
    """Runs in a fresh process: RSS before and after ``count`` sessions are cached."""
    inner = await open_store(url, SessionSettings(url=url, cache_size=0))
    try:
        for n in range(100):  # warm: the drivers' buffers, orjson, the dataclasses
            await inner.load(TENANT, f"m-{n}")
        gc.collect()
        before = _rss_mb()
        cache = CachedStore(inner, count, 3600.0)
        for n in range(count):
            assert await cache.load(TENANT, f"m-{n}") is not None
        gc.collect()
        after = _rss_mb()
        entries = cache._entries.values()  # what the cache holds, encoded
        parts = [part for entry in entries for part in entry.parts]
        payload = sum(len(part) for part in parts)
        # What the allocator gave each cached message (its encoded JSON, one bytes each).
        sample = [_history(CACHED_TURNS, n) for n in range(250)]
        tracemalloc.start()
        held = [encode_messages(messages) for messages in sample]
        allocated = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        encoded = sum(len(part) for messages in held for part in messages)
        count_held = sum(len(messages) for messages in held)
        return {
            "messages": float(len(parts)),
            "allocated_per_message": allocated / count_held,
            "json_per_message": encoded / count_held,
            "sessions": float(len(cache._entries)),
            "before": before,
            "after": after,
            "payload": payload / 1e6,
        }
    finally:
        await inner.close()


def memory(url: str, count: int) -> dict[str, float]:
    child = subprocess.run(
        [sys.executable, __file__, "--memory-child", url, str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(child.stdout)
    return result


# --- the report ------------------------------------------------------------------------


async def measure(opts: argparse.Namespace, directory: Path) -> dict[str, Any]:
    targets, notes = await backends(directory)
    for note in notes:
        _note(f"  {note}")
    try:
        seconds = 0.3 if opts.quick else 2.0
        rates = await throughput(targets, opts.rounds, seconds, directory)
        latency = await latencies(targets, 60 if opts.quick else 300)
    finally:
        for target in targets:
            if target.cleanup is not None:
                await target.cleanup()
    memory_url = f"sqlite:///{directory / 'cached.db'}"
    await seed_cached_sessions(memory_url, opts.cached)
    return {
        "targets": targets,
        "notes": notes,
        "seconds": seconds,
        "rates": rates,
        "latency": latency,
        "memory_url": memory_url,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter cells, fewer requests")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--cached", type=int, help=f"sessions in the LRU cache (default {CACHED_SESSIONS:,})"
    )
    parser.add_argument("--memory-child", nargs=2, metavar=("URL", "COUNT"), help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.cached is None:  # seeding SQLite runs at its write rate: ~10 s for 10,000 here
        opts.cached = 2_000 if opts.quick else CACHED_SESSIONS
    if opts.memory_child:
        url, count = opts.memory_child
        print(json.dumps(asyncio.run(_memory_child(url, int(count)))))
        return 0

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-sessions-") as tmp:
        found = asyncio.run(measure(opts, Path(tmp)))
        mem = memory(found["memory_url"], opts.cached)
    targets: list[Backend] = found["targets"]
    rates: Throughput = found["rates"]
    names = [target.name for target in targets]

    print(
        f"Store throughput, no cache: operations/s, median of {opts.rounds} rounds of "
        f"{found['seconds']:g} s per cell (a write appends a user turn and a 300-character "
        f"answer with the version check; a read loads a session of {READ_TURNS} turns):\n"
    )
    print("| backend | writes/s c=1 | writes/s c=64 | reads/s c=1 | reads/s c=64 |")
    print("|---|---|---|---|---|")
    for name in names:
        w1, w64 = (rates.median(name, "write", c) for c in CONCURRENCY)
        r1, r64 = (rates.median(name, "read", c) for c in CONCURRENCY)
        print(f"| {name} | {w1:,.0f} | {w64:,.0f} | {r1:,.0f} | {r64:,.0f} |")
    ceiling = _median(rates.ceiling)
    print(
        f"\nCeiling on this disk: plain sqlite3, WAL, synchronous=FULL, one transaction of "
        f"two 300-character rows: {ceiling:,.0f} commits/s (median of {len(rates.ceiling)})."
    )
    for note in found["notes"]:
        print(f"\n{note}")

    latency: list[Latency] = found["latency"]
    count = len(latency[0].without) if latency else 0
    print(
        f"\nLatency a session adds to a request with a {HISTORY_TURNS}-turn history "
        f"(gateway and simulator in process, speed 0; median ms of {count} requests each; "
        "the session request also locks, appends and unlocks):\n"
    )
    print("| backend | cache | without session | with session | added | with session p95 |")
    print("|---|---|---|---|---|---|")
    for row in latency:
        p95 = statistics.quantiles(row.with_session, n=20)[-1] * 1000
        print(
            f"| {row.backend} | {row.cache} | {_median(row.without) * 1000:.2f} "
            f"| {_median(row.with_session) * 1000:.2f} | {row.added * 1000:+.2f} | {p95:.2f} |"
        )

    sessions = int(mem["sessions"])
    grown = mem["after"] - mem["before"]
    print(
        f"\nMemory of a process holding {sessions:,} sessions of {CACHED_TURNS} turns in its "
        "LRU cache (CachedStore over SQLite, VmRSS):\n"
    )
    print("| RSS before MB | RSS after MB | added MB | per session KB | cached JSON MB |")
    print("|---|---|---|---|---|")
    print(
        f"| {mem['before']:.1f} | {mem['after']:.1f} | {grown:.1f} "
        f"| {grown * 1024 / max(sessions, 1):.2f} | {mem['payload']:.1f} |"
    )
    print(
        f"\n{int(mem['messages']):,} messages cached, {mem['json_per_message']:.0f} bytes of "
        f"JSON each; orjson.dumps allocates {mem['allocated_per_message']:,.0f} bytes for one "
        "(tracemalloc), which is why the cache keeps exact-size copies."
    )

    print()
    sqlite_writes = rates.median("sqlite", "write", 64)
    print(
        f"{'PASS' if sqlite_writes >= TARGET_SQLITE_WRITES else 'FAIL'}  >= "
        f"{TARGET_SQLITE_WRITES:,.0f} turn writes/s on SQLite (concurrency 64): "
        f"{sqlite_writes:,.0f}/s (per round: "
        f"{', '.join(f'{v:,.0f}' for v in rates.cells[('sqlite', 'write', 64)])})"
    )
    if "redis" in names:
        redis_writes = rates.median("redis", "write", 64)
        print(
            f"{'PASS' if redis_writes > sqlite_writes else 'FAIL'}  more turn writes/s on "
            f"Redis than on SQLite (concurrency 64): {redis_writes:,.0f}/s vs "
            f"{sqlite_writes:,.0f}/s"
        )
    else:
        print("SKIP  more turn writes/s on Redis than on SQLite: Redis not reachable")
    _note(f"  total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
