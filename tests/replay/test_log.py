"""What every replay log promises, run over both backends."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from claude_proxy.errors import PermissionDenied
from claude_proxy.replay import ReplayLog, StreamNotFound, new_stream_id, require_owner
from tests.replay.conftest import MakeLog
from tests.replay.helpers import event, eventually, read_all


async def _stream(log: ReplayLog, events: int = 0, tenant: str = "acme") -> str:
    stream_id = new_stream_id()
    await log.create(stream_id, tenant)
    for seq in range(1, events + 1):
        assert await log.extend(stream_id, [event(seq)]) == seq
    return stream_id


async def test_readers_attaching_anywhere_get_every_later_event_once(make_log: MakeLog) -> None:
    log = await make_log()
    stream_id = await _stream(log)
    total = 2000
    rng = random.Random(4)
    readers: list[tuple[int, asyncio.Task[list[tuple[int, bytes]]]]] = []

    def attach(after: int) -> None:
        readers.append((after, asyncio.create_task(read_all(log, stream_id, after))))

    attach(0)
    for seq in range(1, total + 1):
        assert await log.extend(stream_id, [event(seq)]) == seq
        if rng.random() < 0.02:
            attach(rng.randint(0, seq))  # behind the writer, or exactly at it
        if rng.random() < 0.3:
            await asyncio.sleep(0)
        if rng.random() < 0.01:
            await asyncio.sleep(0.001)  # let Redis round trips and live readers run
    attach(total)
    await log.finish(stream_id)
    attach(rng.randint(0, total))  # after the end: backlog only
    assert len(readers) > 20
    for after, task in readers:
        got = await asyncio.wait_for(task, 10)
        assert [seq for seq, _ in got] == list(range(after + 1, total + 1)), after
        assert all(data == event(seq) for seq, data in got)


async def test_events_added_in_batches_read_back_one_by_one_from_any_position(
    make_log: MakeLog,
) -> None:
    """A burst from upstream is one write; a resume may start inside it."""
    log = await make_log()
    stream_id = await _stream(log)
    rng = random.Random(7)
    # Payloads a length-prefixed batch must not confuse: commas, empty-looking data,
    # multi-byte text, bytes that are not UTF-8.
    odd = [b",", b"1,2,3", "数据,\n\n".encode(), b"\xff\xfe\x00", b"x" * 3000]
    sent: list[bytes] = []
    while len(sent) < 600:
        batch = [rng.choice([*odd, event(len(sent) + i + 1)]) for i in range(rng.randint(1, 40))]
        assert await log.extend(stream_id, batch) == len(sent) + 1
        sent.extend(batch)
        if rng.random() < 0.3:
            await asyncio.sleep(0.001)  # some batches reach Redis alone, some together
    await log.finish(stream_id)
    for after in [0, 1, 2, 17, 299, 300, 301, 599, *rng.sample(range(600), 20)]:
        got = await read_all(log, stream_id, after)
        assert got == list(enumerate(sent, start=1))[after:], after
    assert await log.final_seq(stream_id) == len(sent)


async def test_a_slow_reader_misses_nothing_while_the_writer_runs_ahead(make_log: MakeLog) -> None:
    log = await make_log()
    stream_id = await _stream(log, events=3)
    got: list[int] = []

    async def slow_reader() -> None:
        async with contextlib.aclosing(log.read(stream_id, 1)) as events:
            async for seq, _ in events:
                got.append(seq)
                for _ in range(3):
                    await asyncio.sleep(0)

    reader = asyncio.create_task(slow_reader())
    for seq in range(4, 301):
        await log.extend(stream_id, [event(seq)])
        if seq % 7 == 0:
            await asyncio.sleep(0)
    await log.finish(stream_id)
    await asyncio.wait_for(reader, 10)
    assert got == list(range(2, 301))


async def test_resume_after_finish_returns_the_rest_and_ends(make_log: MakeLog) -> None:
    log = await make_log()
    stream_id = await _stream(log, events=10)
    await log.finish(stream_id)
    await log.finish(stream_id)  # idempotent
    assert await read_all(log, stream_id, 7) == [(8, event(8)), (9, event(9)), (10, event(10))]
    assert await read_all(log, stream_id, 10) == []
    assert len(await read_all(log, stream_id)) == 10
    with pytest.raises(StreamNotFound):
        await log.extend(stream_id, [event(11)])


async def test_an_empty_finished_stream_reads_as_empty(make_log: MakeLog) -> None:
    log = await make_log()
    stream_id = await _stream(log)
    await log.finish(stream_id)
    assert await read_all(log, stream_id) == []


async def test_only_the_owner_may_resume(make_log: MakeLog) -> None:
    log = await make_log()
    stream_id = await _stream(log, events=1, tenant="acme")
    assert await log.owner(stream_id) == "acme"
    await require_owner(log, stream_id, "acme")
    with pytest.raises(PermissionDenied):
        await require_owner(log, stream_id, "globex")
    assert await log.owner("strm_unknown") is None
    with pytest.raises(StreamNotFound) as caught:
        await require_owner(log, "strm_unknown", "acme")
    assert caught.value.status == 404 and caught.value.error_type == "not_found_error"


async def test_a_begun_stream_is_there_at_once_for_its_own_replica(make_log: MakeLog) -> None:
    log = await make_log()
    stream_id = new_stream_id()
    log.begin(stream_id, "acme")  # nothing awaited: the keys go with the writes
    reading = asyncio.create_task(read_all(log, stream_id))
    assert await log.owner(stream_id) == "acme"
    assert await log.extend(stream_id, [event(1)]) == 1
    await log.finish(stream_id)
    assert await asyncio.wait_for(reading, 5) == [(1, event(1))]


async def test_a_begun_stream_its_client_left_at_once_waits_for_a_resume(
    make_log: MakeLog,
) -> None:
    """Its keys may not be in the shared log yet: that is no dropped stream."""
    log = await make_log()
    stream_id = new_stream_id()
    log.begin(stream_id, "acme")
    watch = asyncio.create_task(log.wait_abandoned(stream_id, 5))
    reading = asyncio.create_task(read_all(log, stream_id))
    await log.extend(stream_id, [event(1)])
    await log.finish(stream_id)
    assert await asyncio.wait_for(reading, 5) == [(1, event(1))]
    assert await asyncio.wait_for(watch, 5) is False  # it finished, resumed


async def test_reading_an_unknown_stream_is_not_found(make_log: MakeLog) -> None:
    log = await make_log()
    with pytest.raises(StreamNotFound):
        await read_all(log, "strm_unknown")
    with pytest.raises(StreamNotFound):
        await log.extend("strm_unknown", [b"x"])


async def test_streams_expire_after_their_ttl(make_log: MakeLog) -> None:
    log = await make_log(ttl_seconds=0.2)
    stream_id = await _stream(log, events=2)
    await log.finish(stream_id)
    assert await log.owner(stream_id) == "acme"

    async def expired() -> bool:
        return await log.owner(stream_id) is None

    await eventually(expired, within=2.0)
    with pytest.raises(StreamNotFound):
        await read_all(log, stream_id)


async def test_a_reader_is_visible_while_it_reads(make_log: MakeLog) -> None:
    log = await make_log(poll_seconds=0.01)
    stream_id = await _stream(log, events=1)
    assert not await log.wait_for_reader(stream_id, 0.05)
    reader = asyncio.create_task(read_all(log, stream_id))
    assert await log.wait_for_reader(stream_id, 2.0)
    assert await log.readers(stream_id) == 1
    await log.finish(stream_id)
    assert await asyncio.wait_for(reader, 5) == [(1, event(1))]

    async def detached() -> bool:
        return await log.readers(stream_id) == 0

    await eventually(detached)


async def test_an_unread_stream_is_abandoned_after_the_grace(make_log: MakeLog) -> None:
    log = await make_log(poll_seconds=0.01)
    stream_id = await _stream(log, events=1)
    assert await asyncio.wait_for(log.wait_abandoned(stream_id, 0.05), 2)


async def test_a_stream_with_a_reader_is_not_abandoned_until_it_leaves(make_log: MakeLog) -> None:
    log = await make_log(poll_seconds=0.01)
    stream_id = await _stream(log, events=1)
    events = log.read(stream_id)
    assert await anext(events) == (1, event(1))  # attached, now waiting live
    watch = asyncio.create_task(log.wait_abandoned(stream_id, 0.05))
    await asyncio.sleep(0.15)
    assert not watch.done()
    await events.aclose()  # the resumed client went away too
    assert await asyncio.wait_for(watch, 2)


async def test_a_finished_stream_is_not_abandoned(make_log: MakeLog) -> None:
    log = await make_log(poll_seconds=0.01)
    stream_id = await _stream(log, events=1)
    watch = asyncio.create_task(log.wait_abandoned(stream_id, 5))
    await asyncio.sleep(0.02)
    await log.finish(stream_id)
    assert not await asyncio.wait_for(watch, 2)


async def test_a_finished_stream_knows_its_last_event(make_log: MakeLog) -> None:
    log = await make_log()
    stream_id = await _stream(log, events=5)
    assert await log.final_seq(stream_id) is None  # still being written: no end yet
    await log.finish(stream_id)
    assert await log.final_seq(stream_id) == 5
    empty = await _stream(log)
    await log.finish(empty)
    assert await log.final_seq(empty) == 0
    assert await log.final_seq(new_stream_id()) is None


async def test_runs_are_read_back_one_event_at_a_time_from_any_position(
    make_log: MakeLog,
) -> None:
    """The relay hands over a burst of deltas as one item (a run); a resume may start
    inside one, and every event keeps its own number."""
    log = await make_log()
    stream_id = await _stream(log)
    rng = random.Random(5)
    sent: list[bytes] = []
    while len(sent) < 700:
        items: list[bytes] = []
        counts: list[int] = []
        for _ in range(rng.randint(1, 4)):
            size = rng.choice([1, 1, 2, 60])
            run = [event(len(sent) + i + 1) for i in range(size)]
            items.append(b"".join(run))
            counts.append(size)
            sent.extend(run)
        assert await log.extend(stream_id, items, counts) == len(sent) - sum(counts) + 1
        if rng.random() < 0.3:
            await asyncio.sleep(0.001)
    await log.finish(stream_id)
    for after in [0, 1, 2, 30, 61, 62, 63, len(sent) - 1, *rng.sample(range(len(sent)), 25)]:
        got = await read_all(log, stream_id, after)
        assert got == list(enumerate(sent, start=1))[after:], after
    assert await log.final_seq(stream_id) == len(sent)
