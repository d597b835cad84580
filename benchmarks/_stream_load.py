"""Stream load generator for benchmarks/streaming.py: timestamps every event of every stream.

Started once per phase and kept running, like _load.py. Each stdin line is a JSON job;
stdout gets one JSON result line per job (and, for ``hold`` jobs, an ``all_open`` line
first, as soon as every stream has received its first event, so the caller can read the
gateway's RSS with all of them open).

Job fields:
- ``kind``: ``sse`` (POST /v1/messages, ``stream: true``) or ``ws`` (one WebSocket per
  worker, its requests one after another on it);
- ``url``, ``api_key``, ``answer_tokens`` (sent as ``x-sim-answer-tokens``), ``events``
  (how many events a whole answer has: anything else is an error);
- ``concurrency`` workers; worker k starts ``k * stagger / concurrency`` seconds in, so
  paced streams are spread out in phase instead of ticking all at once;
- ``duration``: workers start new streams until then (closed loop); ``hold``: each worker
  runs exactly one stream instead.

The per-event cost is kept tiny so that this process is not what is measured: SSE events
are counted by their blank-line terminator (never parsed), WebSocket frames by arrival;
each gets the monotonic time of the chunk that completed it. Results are per stream:
its start (µs since the job began) and each event's arrival (µs since the stream began).
"""

from __future__ import annotations

import asyncio
import gc
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import uvloop

_BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": "Tell me about streaming gateways."}],
}
_STOP = b"message_stop"


@dataclass(frozen=True, slots=True)
class Job:
    kind: str
    url: str
    api_key: str
    answer_tokens: int
    events: int
    concurrency: int
    stagger: float = 0.0
    duration: float = 0.0
    hold: bool = False


@dataclass(slots=True)
class Tally:
    job_start: float
    streams: list[tuple[int, list[int]]] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    opened: int = 0

    def fail(self, reason: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 3:
            self.error_samples.append(reason[:300])

    def record(self, t0: float, times: list[float]) -> None:
        self.streams.append(
            (
                round((t0 - self.job_start) * 1e6),
                [round((t - t0) * 1e6) for t in times],
            )
        )


def request_body() -> bytes:
    return orjson.dumps({**_BODY, "stream": True})


def http_headers(api_key: str, answer_tokens: int) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-api-key": api_key,
        "x-sim-answer-tokens": str(answer_tokens),
    }


class Opening:
    """Counts streams that have their first event; says so once all of them have."""

    def __init__(self, job: Job, tally: Tally) -> None:
        self._job = job
        self._tally = tally

    def first_event(self) -> None:
        if not self._job.hold:
            return
        self._tally.opened += 1
        if self._tally.opened == self._job.concurrency:
            _emit({"all_open": True, "at_s": time.monotonic() - self._tally.job_start})


async def _sse_stream(
    session: aiohttp.ClientSession, job: Job, body: bytes, tally: Tally, opening: Opening
) -> None:
    times: list[float] = []
    tail = b""
    ended_nl = False
    t0 = time.monotonic()
    try:
        async with session.post(
            job.url, data=body, headers=http_headers(job.api_key, job.answer_tokens)
        ) as response:
            if response.status != 200:
                tally.fail(f"HTTP {response.status}: {(await response.read())[:200]!r}")
                return
            async for chunk in response.content.iter_any():
                now = time.monotonic()
                count = chunk.count(b"\n\n")
                if ended_nl and chunk[:1] == b"\n":
                    count += 1  # the blank line was split across two chunks
                ended_nl = chunk[-1:] == b"\n"
                if count:
                    if not times:
                        opening.first_event()
                    times.extend([now] * count)
                tail = (tail + chunk)[-160:]
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.fail(f"{type(exc).__name__}: {exc}")
        return
    if _STOP not in tail or len(times) != job.events:
        tally.fail(f"{len(times)} events (want {job.events}), tail {tail[-100:]!r}")
        return
    tally.record(t0, times)


async def _ws_stream(
    ws: aiohttp.ClientWebSocketResponse,
    job: Job,
    request_id: int,
    tally: Tally,
    opening: Opening,
) -> bool:
    """One request on the socket; False when the socket is no longer usable."""
    frame = {
        "id": request_id,
        "type": "request",
        "body": _BODY,
        "headers": {"x-sim-answer-tokens": str(job.answer_tokens)},
    }
    times: list[float] = []
    t0 = time.monotonic()
    await ws.send_str(orjson.dumps(frame).decode())
    while True:
        message = await ws.receive()
        now = time.monotonic()
        if message.type != aiohttp.WSMsgType.TEXT:
            tally.fail(f"socket ended: {message.type!r} {message.data!r} {message.extra!r}")
            return False
        if not times:
            opening.first_event()
        times.append(now)
        data: str = message.data
        if '"message_stop"' in data:
            break
        if '"type":"error"' in data:
            tally.fail(f"error event: {data[:200]}")
            return True
    if len(times) != job.events:
        tally.fail(f"{len(times)} events (want {job.events})")
        return True
    tally.record(t0, times)
    return True


async def _worker(
    session: aiohttp.ClientSession, job: Job, index: int, tally: Tally, opening: Opening
) -> None:
    start = tally.job_start + index * job.stagger / job.concurrency
    deadline = tally.job_start + job.duration
    body = request_body()
    ws: aiohttp.ClientWebSocketResponse | None = None
    try:
        if job.kind == "ws":
            try:
                ws = await session.ws_connect(
                    job.url,
                    headers={"x-api-key": job.api_key, "anthropic-version": "2023-06-01"},
                    max_msg_size=0,
                    autoping=True,
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                tally.fail(f"ws connect: {type(exc).__name__}: {exc}")
                return
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        request_id = 0
        while True:
            request_id += 1
            if ws is not None:
                try:
                    if not await _ws_stream(ws, job, request_id, tally, opening):
                        return
                except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                    tally.fail(f"ws: {type(exc).__name__}: {exc}")
                    return
            else:
                await _sse_stream(session, job, body, tally, opening)
            if job.hold or time.monotonic() >= deadline:
                return
    finally:
        if ws is not None:
            await ws.close()


async def run_job(session: aiohttp.ClientSession, job: Job) -> dict[str, Any]:
    # No cyclic GC while measuring: a full collection here would stall every stream at
    # once and be counted against the target. Cycles wait for the collection after the job.
    gc.disable()
    try:
        tally = Tally(job_start=time.monotonic())
        opening = Opening(job, tally)
        cpu0 = _cpu()
        workers = (_worker(session, job, k, tally, opening) for k in range(job.concurrency))
        await asyncio.gather(*workers)
        elapsed = time.monotonic() - tally.job_start
    finally:
        gc.enable()
        gc.collect()
    return {
        "streams": tally.streams,
        "errors": tally.errors,
        "error_samples": tally.error_samples,
        "job_start": tally.job_start,
        "elapsed_s": elapsed,
        "cpu_s": _cpu() - cpu0,
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _emit(value: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(value) + b"\n")
    sys.stdout.flush()


async def serve_jobs() -> None:
    gc.freeze()  # the imported modules: never scanned again
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = asyncio.get_running_loop()
    # No pool limit: every worker holds its own connection; keep-alive across jobs.
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=300)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            _emit(await run_job(session, Job(**orjson.loads(line))))


if __name__ == "__main__":
    uvloop.run(serve_jobs())
