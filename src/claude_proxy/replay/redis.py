"""Replay logs in Redis Streams, so that a stream written by one replica can be read by any.

Keys, for stream ``s`` under ``key_prefix`` ``P`` (the ``{s}`` hash tag keeps one stream's
keys in one cluster slot)::

    P{s}:meta     hash    tenant, created (epoch seconds)
    P{s}:events   stream  one entry per flushed batch of events, its id ``0-<seq of the
                          batch's last event>``: {d: <event bytes>} for one event, {d:
                          <the events' bytes, joined>, l: <their lengths, comma-separated>}
                          for several, or {d: …, n: <how many>} when the batch holds
                          a run (split on blank lines); the finish marker is the
                          entry after the last event, ``0-<n+1>`` {e: 1}
    P{s}:writer   string  present while the writing replica is alive and the stream is
                          unfinished: refreshed (PX lease) by its writes and a heartbeat
    P{s}:readers  zset    attached reader token -> lease expiry (epoch ms)

``meta``, ``events`` and ``readers`` expire ``ttl_seconds`` after the last write (renewed
by writes at most every ``lease_seconds / 3``, so "about": within that much earlier).

Appends are buffered in the writing replica and sent in order by one background flusher
for all streams (a pipeline with one XADD per stream and explicit ids), so ``extend``
never waits for Redis and a burst of events costs one command, not one each. A new
stream's keys go in the same pipelines: with redis-py a round trip costs more CPU than the
commands in it, and streams start together. ``create`` waits for its round; ``begin``, the
gateway's, does not: a stream's first bytes need not wait for a round trip that its
client's resume, if any, comes long after. A replica asked for a stream whose keys are not
there yet (``owner``, ``read``) asks again for up to ``YOUNG_SECONDS`` after the time in its
id: begun elsewhere, it is there with its writer's next round. A reader
needs no ordering with the writer: it asks for entries with ids above the last event it
saw, skips the events of a batch it already has, and the explicit ids make the backlog
(XRANGE) and the live tail (XREAD BLOCK) join without a gap or a duplicate. A live
reader that hears nothing for ``block_seconds`` checks the writer key: once it is gone
without a finish marker, the stream is lost.

Replay fails open: while Redis is down, or after it lost a stream's keys, the stream goes
on for its live client without being resumable (``extend`` raises, the generation stops
writing; a resume is answered 404). The background writes log one line when Redis starts
failing and one when it answers again, not one per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any, Self, TypeVar

from redis import asyncio as aioredis

from claude_proxy.replay.base import ReplaySettings, StreamLost, StreamNotFound
from claude_proxy.replay.ids import stream_made_at
from claude_proxy.state import StateUnavailable
from claude_proxy.state.outage import Outage
from claude_proxy.state.redis import close_within, open_redis, translate_redis_errors
from claude_proxy.state.tasks import cancel_requested, stop_tasks
from claude_proxy.streaming.sse import run_events

__all__ = ["RedisReplayLog"]

_log = logging.getLogger("claude_proxy.replay")
_T = TypeVar("_T")
_Fields = dict[bytes, bytes]

BATCH = 512  # entries per XRANGE/XREAD reply
MAX_PENDING = 4096  # buffered events per stream before extend waits for Redis
DRAIN_SECONDS = 0.5  # close() lets buffered appends reach Redis for this long
# finish() waits this long for the finish marker to reach Redis, then lets the flusher
# go on alone: the end of a client's stream must not wait on a stalled Redis.
FINISH_SECONDS = 0.25
STOP_SECONDS = 1.0  # then waits this long for its tasks to stop, and gives up
# A stream begun on another replica is looked for again for this long after the time in
# its id (its writer's round lands in a millisecond; a stalled Redis takes up to its socket
# timeout), every YOUNG_POLL seconds; an unknown id older than that is not found at once.
YOUNG_SECONDS = 6.0
YOUNG_POLL = 0.005


# One round of the flusher: every stream's writes in one script call. A pipeline of the
# same commands cost redis-py a command to pack and a reply to parse each (~25 us of CPU
# a command on a 2-core host, more than Redis spends running them); here it is one of
# each. ARGV: the TTL and the writer lease in ms, then operations, each a letter and the
# stream's key prefix ``P{s}:`` first:
#   c <tenant> <created>            a new stream: meta (with its TTL) and the writer key
#   a <id> <data> <field> <value>   an entry of events; field "" (one event), n or l
#   m <id>                          the finish marker, then the writer key goes
#   r <w>                           renew the TTLs (and the writer lease when w is "w")
#   e                               give the new events key its TTL
# Keys are built in the script: standalone Redis allows it (as for admission's scripts).
_WRITE = r"""
local ttl, lease = ARGV[1], ARGV[2]
local i = 3
while i <= #ARGV do
  local op, base = ARGV[i], ARGV[i + 1]
  if op == 'a' then
    if ARGV[i + 4] == '' then
      redis.call('XADD', base .. 'events', ARGV[i + 2], 'd', ARGV[i + 3])
    else
      redis.call('XADD', base .. 'events', ARGV[i + 2], 'd', ARGV[i + 3], ARGV[i + 4], ARGV[i + 5])
    end
    i = i + 6
  elseif op == 'c' then
    redis.call('HSET', base .. 'meta', 'tenant', ARGV[i + 2], 'created', ARGV[i + 3])
    redis.call('PEXPIRE', base .. 'meta', ttl)
    redis.call('SET', base .. 'writer', '1', 'PX', lease)
    i = i + 4
  elseif op == 'm' then
    redis.call('XADD', base .. 'events', ARGV[i + 2], 'e', '1')
    redis.call('DEL', base .. 'writer')
    i = i + 3
  elseif op == 'r' then
    redis.call('PEXPIRE', base .. 'events', ttl)
    redis.call('PEXPIRE', base .. 'meta', ttl)
    redis.call('PEXPIRE', base .. 'readers', ttl)
    if ARGV[i + 2] == 'w' then
      redis.call('PEXPIRE', base .. 'writer', lease)
    end
    i = i + 3
  elseif op == 'e' then
    redis.call('PEXPIRE', base .. 'events', ttl)
    i = i + 2
  else
    return redis.error_reply('unknown replay write ' .. tostring(op))
  end
end
return 1
"""


class _Keys:
    __slots__ = ("base", "events", "meta", "readers", "writer")

    def __init__(self, prefix: str, stream_id: str) -> None:
        self.base = base = f"{prefix}{{{stream_id}}}:"
        self.meta = base + "meta"
        self.events = base + "events"
        self.writer = base + "writer"
        self.readers = base + "readers"


class _Writer:
    __slots__ = (
        "error",
        "events_expire",
        "finishing",
        "flushed",
        "keys",
        "marker",
        "pending",
        "pending_count",
        "refresh_at",
        "seq",
        "tenant",
    )

    def __init__(self, keys: _Keys, tenant: str) -> None:
        self.keys = keys
        self.tenant: str | None = tenant  # None once the stream's keys are written
        self.seq = 0  # the last sequence number handed out (the finish marker's included)
        self.flushed = 0  # the last one known to be in Redis
        self.pending: list[bytes] = []  # events not yet sent, the last one's seq is `seq`
        self.pending_count = 0  # how many events `pending` holds (an item may be a run)
        self.marker = False  # the finish marker is queued (after `pending`), not yet sent
        self.finishing = False
        self.refresh_at = 0.0  # when the TTLs and the lease are next renewed by a flush
        self.events_expire = False  # the events key has been given its TTL
        self.error: StateUnavailable | None = None


class RedisReplayLog:
    """Replay logs shared by every replica through one Redis."""

    def __init__(
        self, settings: ReplaySettings, client: aioredis.Redis, blocking: aioredis.Redis
    ) -> None:
        self.settings = settings
        self._redis = client
        self._blocking = blocking  # XREAD BLOCK holds a connection: keep them off the main pool
        self._writers: dict[str, _Writer] = {}
        self._ttl_ms = int(settings.ttl_seconds * 1000)
        self._lease_ms = int(settings.lease_seconds * 1000)
        self._heartbeat: asyncio.Task[None] | None = None
        # One flusher for all streams: each round sends every stream's pending appends
        # in one pipeline, so many streams cost one round trip, not one each.
        self._dirty: dict[str, _Writer] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._round = asyncio.Event()
        self._closing = False
        self._outage = Outage(_log, "the replay log's Redis")
        # Run by SHA; redis-py loads it again if Redis lost it (restart, SCRIPT FLUSH).
        self._write_script = client.register_script(_WRITE)

    @classmethod
    async def open(cls, url: str, settings: ReplaySettings) -> Self:
        # Event bytes stay bytes: no decoding on the way out, none to undo on the way in.
        client = open_redis(url, decode_responses=False)
        blocking = open_redis(
            url,
            socket_timeout=settings.block_seconds + 5.0,
            max_connections=settings.max_live_readers,
            decode_responses=False,
        )
        log = cls(settings, client, blocking)
        try:
            with translate_redis_errors("connecting to the replay log"):
                await client.ping()
        except StateUnavailable:
            await log.close()
            raise
        log._heartbeat = asyncio.create_task(log._beat(), name="replay-writer-heartbeat")
        return log

    def _keys(self, stream_id: str) -> _Keys:
        return _Keys(self.settings.key_prefix, stream_id)

    def begin(self, stream_id: str, tenant: str) -> None:
        if self._outage.down:  # no stream id to hand out that no resume could use
            raise StateUnavailable("the replay log's Redis is unavailable")
        # No round of its own: the keys go with the stream's first events (or its end),
        # one round trip for both, sent after the client has them.
        self._begin(stream_id, tenant)

    def _begin(self, stream_id: str, tenant: str) -> _Writer:
        # Written by the flusher, in the round trip it makes for every stream's writes:
        # a round trip of its own cost each stream more CPU than all its other writes.
        writer = _Writer(self._keys(stream_id), tenant)
        self._writers[stream_id] = writer
        self._dirty[stream_id] = writer
        return writer

    async def create(self, stream_id: str, tenant: str) -> None:
        writer = self._begin(stream_id, tenant)
        if self._flusher is None:
            self._start_flusher()
        try:
            while writer.tenant is not None and writer.error is None:
                await self._round.wait()
                if self._flusher is None and writer.tenant is not None:
                    self._start_flusher()  # the round that took it failed, or was cancelled
        except BaseException:
            self._writers.pop(stream_id, None)
            raise
        if writer.error is not None:
            self._writers.pop(stream_id, None)
            raise writer.error

    async def extend(
        self, stream_id: str, events: Sequence[bytes], counts: Sequence[int] | None = None
    ) -> int:
        writer = self._writers.get(stream_id)
        if writer is None or writer.finishing:
            raise StreamNotFound(stream_id)
        if writer.error is not None:
            raise writer.error
        if self._closing:  # else close() would drain for as long as appends come
            raise _closed()
        count = len(events) if counts is None else sum(counts)
        first = writer.seq + 1
        writer.seq += count
        writer.pending.extend(events)
        writer.pending_count += count
        self._dirty[stream_id] = writer
        if self._flusher is None:
            self._start_flusher()
        elif writer.pending_count >= MAX_PENDING:
            await self._flushed(writer)  # Redis is slow: push back on the writer
        return first

    async def finish(self, stream_id: str) -> None:
        writer = self._writers.get(stream_id)
        if writer is None or writer.finishing:
            return
        writer.finishing = True
        writer.seq += 1
        writer.marker = True
        self._dirty[stream_id] = writer
        try:
            await self._flushed(writer, within=FINISH_SECONDS)
        finally:
            self._writers.pop(stream_id, None)

    async def owner(self, stream_id: str) -> str | None:
        meta = self._keys(stream_id).meta

        async def tenant() -> Any:
            with translate_redis_errors("reading a replay stream's owner"):
                return await self._redis.hget(meta, "tenant")

        found = await self._found(stream_id, tenant)
        return None if found is None else found.decode() if isinstance(found, bytes) else found

    async def final_seq(self, stream_id: str) -> int | None:
        events = self._keys(stream_id).events
        reply: Any = await _call(
            "reading a replay stream's end",
            lambda: self._redis.xrevrange(events, "+", "-", count=1),
        )
        if not reply:
            return None
        entry_id, fields = reply[0]
        if fields.get(b"d") is not None:
            return None  # no finish marker yet: still being written
        return int(entry_id[2:]) - 1

    async def read(self, stream_id: str, after: int = 0) -> AsyncGenerator[tuple[int, bytes], None]:
        keys = self._keys(stream_id)
        token = secrets.token_hex(8)
        last = max(after, 0)
        renew_at = time.monotonic() + self.settings.lease_seconds / 3
        live = final = False
        try:
            if not await self._found(stream_id, lambda: self._attach(keys, token)):
                raise StreamNotFound(stream_id)
            while True:
                if cancel_requested():  # lost in redis-py (see state.tasks): the client left
                    raise asyncio.CancelledError
                if live:
                    entries = await self._read_live(keys.events, last)
                    if not entries:
                        final = not await self._writer_alive(keys)
                        live = not final
                        continue
                else:
                    entries = await self._read_backlog(keys.events, last)
                    live = not final and len(entries) < BATCH
                for entry_id, fields in entries:
                    batch = _events(entry_id, fields)
                    if batch is None:
                        return  # the finish marker
                    for seq, data in batch:
                        if seq > last:  # a resumed reader may start inside a batch
                            last = seq
                            yield seq, data
                if final and len(entries) < BATCH:
                    raise StreamLost(stream_id, "its writer stopped before the end")
                if time.monotonic() >= renew_at:
                    renew_at = time.monotonic() + self.settings.lease_seconds / 3
                    await self._attach(keys, token)
        finally:
            with contextlib.suppress(StateUnavailable), translate_redis_errors("detaching"):
                await self._redis.zrem(keys.readers, token)

    async def readers(self, stream_id: str) -> int:
        readers = self._keys(stream_id).readers
        with translate_redis_errors("counting replay readers"):
            return int(await self._redis.zcount(readers, _now_ms(), "+inf"))

    async def wait_for_reader(self, stream_id: str, grace: float) -> bool:
        deadline = time.monotonic() + grace
        while True:
            if await self.readers(stream_id):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(self.settings.poll_seconds, left))

    async def wait_abandoned(self, stream_id: str, grace: float) -> bool:
        keys = self._keys(stream_id)
        alone_since = time.monotonic()
        while stream_id in self._writers:
            if cancel_requested():  # lost in redis-py (see state.tasks): the stream is over
                raise asyncio.CancelledError
            pipe = self._redis.pipeline(transaction=False)
            pipe.zcount(keys.readers, _now_ms(), "+inf")
            pipe.exists(keys.meta)
            with translate_redis_errors("watching replay readers"):
                readers, exists = await pipe.execute()
            now = time.monotonic()
            writer = self._writers.get(stream_id)
            if writer is None:
                return False  # finished meanwhile
            if not exists and writer.tenant is None:
                return True  # dropped (expired): not a stream whose keys are on their way
            if readers:
                alone_since = now
            elif now - alone_since >= grace:
                return True
            await asyncio.sleep(self.settings.poll_seconds)
        return False

    async def close(self) -> None:
        """Stop the heartbeat, give buffered appends a moment, close the clients: bounded."""
        # A cancel lost in a Redis command (CPython gh-86296, see state.tasks) leaves a loop
        # running: the flag ends the heartbeat at its next turn, and starts no new flusher.
        self._closing = True
        tasks = [task for task in (self._heartbeat, self._flusher) if task is not None]
        if self._flusher is not None:
            await asyncio.wait([self._flusher], timeout=DRAIN_SECONDS)
        await stop_tasks(tasks, deadline=STOP_SECONDS)
        await close_within(self._redis.aclose(), "the replay Redis client")
        await close_within(self._blocking.aclose(), "the replay blocking Redis client")

    def _start_flusher(self) -> None:
        if self._closing:  # nobody would stop it, and close() may be past waiting for it
            raise _closed()
        self._flusher = asyncio.create_task(self._flush(), name="replay-flusher")

    async def _flush(self) -> None:
        """Send buffered appends, round after round, until none remain; in order per stream."""
        try:
            while self._dirty and not cancel_requested():
                dirty, self._dirty = self._dirty, {}
                ops: list[Any] = [self._ttl_ms, self._lease_ms]
                now = time.monotonic()
                for writer in dirty.values():
                    self._queue_writes(ops, writer, now)
                try:
                    with translate_redis_errors("appending to replay streams"):
                        await self._write_script(args=ops)
                except StateUnavailable as exc:
                    self._outage.failed(exc)
                    for writer in dirty.values():
                        writer.error = exc
                except asyncio.CancelledError:  # by close(): these writes may not have landed
                    for writer in dirty.values():
                        writer.error = StateUnavailable("replay stream writes were interrupted")
                    raise
                else:
                    self._outage.ok()
                    for writer in dirty.values():
                        writer.tenant = None  # its keys, if this round wrote them, are in
                for writer in dirty.values():
                    unsent = writer.pending_count + writer.marker
                    writer.flushed = max(writer.flushed, writer.seq - unsent)
                self._round.set()
                self._round = asyncio.Event()
        finally:
            self._flusher = None
            # Wake the waiters of this round, and leave an unset event for the next flusher:
            # a set one would let `_flushed` spin without ever yielding to the flusher.
            self._round.set()
            self._round = asyncio.Event()

    def _queue_writes(self, ops: list[Any], writer: _Writer, now: float) -> None:
        """Add the writer's operations for this round to ``ops`` (see ``_WRITE``)."""
        base = writer.keys.base
        renew_every = min(self.settings.lease_seconds / 3, self._ttl_ms / 10_000)
        if writer.tenant is not None:  # a new stream: its keys first
            ops += ("c", base, writer.tenant, f"{time.time():.3f}")
            writer.refresh_at = now + renew_every  # all fresh but the events key, not made yet
        batch, writer.pending = writer.pending, []
        count, writer.pending_count = writer.pending_count, 0
        last = f"0-{writer.seq - writer.marker}"
        if count == 1:
            ops += ("a", base, last, batch[0], "", "")
        elif count > len(batch):  # with runs: the blank lines say where each event ends
            ops += ("a", base, last, b"".join(batch), "n", count)
        elif batch:  # one event each: their lengths say it
            lengths = ",".join([str(len(data)) for data in batch])
            ops += ("a", base, last, b"".join(batch), "l", lengths)
        if writer.marker:  # the writer key goes after it
            writer.marker = False
            ops += ("m", base, f"0-{writer.seq}")
        # TTLs are renewed every few seconds, not on every flush (three commands a stream),
        # and the events key gets its first as soon as it exists.
        if now >= writer.refresh_at:
            writer.refresh_at = now + renew_every
            writer.events_expire = True
            ops += ("r", base, "" if writer.finishing else "w")
        elif not writer.events_expire and (batch or writer.finishing):
            writer.events_expire = True
            ops += ("e", base)

    async def _flushed(self, writer: _Writer, within: float | None = None) -> None:
        """Wait until every append so far is in Redis (or ``within`` seconds have passed:
        the writes go on); raise if writing failed."""
        target = writer.seq
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        while writer.flushed < target and writer.error is None:
            round_done = self._round
            if self._flusher is None and (writer.pending or writer.marker):
                self._start_flusher()
            if deadline is None:
                await round_done.wait()
                continue
            left = deadline - loop.time()
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await round_done.wait()
        if writer.error is not None:
            raise writer.error

    async def _beat(self) -> None:
        """Keep the writer keys of this replica's idle unfinished streams alive."""
        while not (self._closing or cancel_requested()):
            await asyncio.sleep(self.settings.lease_seconds / 3)
            if not self._writers:
                continue
            pipe = self._redis.pipeline(transaction=False)
            for writer in self._writers.values():
                pipe.pexpire(writer.keys.writer, self._lease_ms)
                pipe.pexpire(writer.keys.events, self._ttl_ms)
                pipe.pexpire(writer.keys.meta, self._ttl_ms)
            try:
                with translate_redis_errors("renewing replay writer leases"):
                    await pipe.execute()
            except StateUnavailable as exc:
                self._outage.failed(exc)
            else:
                self._outage.ok()

    async def _found(self, stream_id: str, look: Callable[[], Awaitable[_T]]) -> _T:
        """``look()``; while it finds nothing (None, False) and the stream may not have
        reached Redis yet (begun here or, by its id, lately elsewhere), again."""
        found = await look()
        if found:
            return found
        loop = asyncio.get_running_loop()
        if stream_id in self._writers:  # begun here: its keys go now, not with its events
            if self._flusher is None and self._dirty:
                self._start_flusher()
            left = YOUNG_SECONDS
        else:
            made = stream_made_at(stream_id)
            left = 0.0 if made is None else min(made + YOUNG_SECONDS - time.time(), YOUNG_SECONDS)
        deadline = loop.time() + min(left, self.settings.ttl_seconds)  # it expires anyway
        while not found and loop.time() < deadline:
            await asyncio.sleep(YOUNG_POLL)
            found = await look()
        return found

    async def _attach(self, keys: _Keys, token: str) -> bool:
        pipe = self._redis.pipeline(transaction=False)
        pipe.exists(keys.meta)
        pipe.zadd(keys.readers, {token: _now_ms() + self._lease_ms})
        pipe.pexpire(keys.readers, self._ttl_ms)
        with translate_redis_errors("attaching a replay reader"):
            exists, _, _ = await pipe.execute()
        return bool(exists)

    async def _read_backlog(self, events: str, last: int) -> list[tuple[bytes, _Fields]]:
        reply: Any = await _call(
            "reading a replay backlog",
            lambda: self._redis.xrange(events, f"(0-{last}", "+", count=BATCH),
        )
        return list(reply or [])

    async def _read_live(self, events: str, last: int) -> list[tuple[bytes, _Fields]]:
        block_ms = int(self.settings.block_seconds * 1000)
        reply: Any = await _call(
            "waiting for replay events",
            lambda: self._blocking.xread({events: f"0-{last}"}, count=BATCH, block=block_ms),
        )
        if not reply:
            return []
        if isinstance(reply, dict):  # RESP3
            return list(next(iter(reply.values()))[0])
        return list(reply[0][1])

    async def _writer_alive(self, keys: _Keys) -> bool:
        alive = await _call("checking a replay writer", lambda: self._redis.exists(keys.writer))
        return bool(alive)


def _events(entry_id: bytes, fields: _Fields) -> list[tuple[int, bytes]] | None:
    """The ``(seq, data)`` pairs of one entry; None for the finish marker."""
    data = fields.get(b"d")
    if data is None:
        return None
    last = int(entry_id[2:])
    if b"n" in fields:
        events = run_events(data)
        return list(enumerate(events, start=last - len(events) + 1))
    lengths = fields.get(b"l")
    if lengths is None:
        return [(last, data)]
    sizes = [int(size) for size in lengths.split(b",")]
    seq, start, pairs = last - len(sizes), 0, []
    for size in sizes:
        seq += 1
        pairs.append((seq, data[start : start + size]))
        start += size
    return pairs


async def _call(action: str, command: Callable[[], Awaitable[_T]]) -> _T:
    with translate_redis_errors(action):
        return await command()


def _closed() -> StateUnavailable:
    return StateUnavailable("the replay log is closed")


def _now_ms() -> int:
    return int(time.time() * 1000)
