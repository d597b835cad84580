"""Soak: minutes of mixed traffic with faults; RSS over time, errors, unread task exceptions.

A simulator with a 5 % fault rate (429, 529, 500, resets, cut streams, error events, slow
starts) and a gateway with its default settings; the load mixes JSON calls, streams read
to the end, streams the client abandons half-way, resumes of those, and JSON calls
continued past max_tokens. Every minute (or --every seconds) it samples the gateway's RSS
and counts what went wrong:

- client-visible errors: a JSON answer that is not 200, a stream that is not a 200 ending
  with message_stop or an error event (a silent end);
- "Task exception was never retrieved" and tracebacks in the gateway's log.

RSS must level off: the replay logs are bounded (64 MiB, 10,000 streams, 10 minutes by
default), so once they are full (about five minutes at this load) it stops growing; runs of
7 minutes or more judge it (under 5 % over the last third).

    python benchmarks/soak.py                 # 8 minutes
    python benchmarks/soak.py --minutes 1     # a shorter check (RSS not judged)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from _procs import free_port, rss_mb, run_benchmark, spawn, stop, wait_ready

API_KEY = "sk-ant-soak-key"
LEVEL_OFF_MINUTES = 7
HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "c"}
MODELS = ("claude-haiku-4-5", "claude-sonnet-4-6")


@dataclass(slots=True)
class Counts:
    calls: int = 0
    upstream_errors: int = 0  # the API's own error, passed on honestly (after retries)
    silent_ends: int = 0  # a 200 stream with neither message_stop nor an error event
    unexpected: int = 0  # anything else a client would call a bug
    samples: list[str] = field(default_factory=list)

    def bug(self, what: str) -> None:
        self.unexpected += 1
        if len(self.samples) < 5:
            self.samples.append(what)


def body(rng: random.Random, stream: bool) -> dict[str, object]:
    words = " ".join(
        rng.choice(("gateway", "river", "stream", "token", "bridge")) for _ in range(8)
    )
    return {
        "model": rng.choice(MODELS),
        "max_tokens": rng.choice((64, 256, 1024)),
        "stream": stream,
        "messages": [{"role": "user", "content": f"{words} {rng.random()}"}],
    }


async def json_call(
    http: aiohttp.ClientSession, url: str, counts: Counts, rng: random.Random
) -> None:
    headers = dict(HEADERS)
    if rng.random() < 0.2:
        headers["x-proxy-max-continuations"] = "2"
    async with http.post(f"{url}/v1/messages", json=body(rng, False), headers=headers) as r:
        payload = await r.json(content_type=None)
        if r.status == 200 and payload.get("type") == "message":
            return
        if r.status >= 400 and payload.get("type") == "error":
            counts.upstream_errors += 1
            return
        counts.bug(f"json {r.status} {str(payload)[:80]}")


async def stream_call(
    http: aiohttp.ClientSession, url: str, counts: Counts, rng: random.Random, abandon: bool
) -> None:
    async with http.post(f"{url}/v1/messages", json=body(rng, True), headers=HEADERS) as r:
        if r.status != 200:
            payload = await r.json(content_type=None)
            counts.upstream_errors += payload.get("type") == "error"
            if payload.get("type") != "error":
                counts.bug(f"stream {r.status}")
            return
        stream_id = r.headers.get("x-proxy-stream-id")
        seen = b""
        last_id = "0"
        async for chunk in r.content.iter_any():
            seen += chunk
            if abandon and len(seen) > 600:
                for line in seen.split(b"\n"):
                    if line.startswith(b"id: "):
                        last_id = line[4:].decode()
                break
    if abandon and stream_id is not None:
        # Come back for the rest, as a client whose connection dropped would.
        resume = {**HEADERS, "last-event-id": last_id}
        async with http.get(f"{url}/v1/streams/{stream_id}", headers=resume) as r:
            if r.status == 200:
                seen += await r.read()
            elif r.status != 404:
                counts.bug(f"resume {r.status}")
                return
            else:
                return
    ended = b"event: message_stop" in seen or b"event: error" in seen
    if not ended:
        counts.silent_ends += 1
        counts.bug(f"silent end after {len(seen)} bytes")
    elif b"event: error" in seen:
        counts.upstream_errors += 1


async def client(url: str, counts: Counts, until: float, seed: int) -> None:
    rng = random.Random(seed)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while time.monotonic() < until:
            kind = rng.random()
            counts.calls += 1
            try:
                if kind < 0.4:
                    await json_call(http, url, counts, rng)
                else:
                    await stream_call(http, url, counts, rng, abandon=kind > 0.85)
            except (aiohttp.ClientError, TimeoutError) as exc:
                counts.bug(f"{type(exc).__name__}: {exc}"[:100])


def log_counts(log: str) -> tuple[int, int]:
    return log.count("Task exception was never retrieved"), log.count("Traceback (most recent")


async def soak(
    url: str, pid: int, read_log: Callable[[], str], minutes: float, every: float, clients: int
) -> list[list[str]]:
    counts = Counts()
    started = time.monotonic()
    until = started + minutes * 60
    load = [asyncio.create_task(client(url, counts, until, seed)) for seed in range(clients)]
    rows: list[list[str]] = []
    last_calls, last_time = 0, started

    def sample(label: str | None = None) -> None:
        nonlocal last_calls, last_time
        now = time.monotonic()
        task_exceptions, tracebacks = log_counts(read_log())
        rate = (counts.calls - last_calls) / (now - last_time) if now - last_time > 1 else None
        rows.append(
            [
                label or f"{(now - started) / 60:.1f}",
                f"{rss_mb(pid):.0f}",
                "-" if rate is None else f"{rate:.0f}",
                str(counts.calls),
                str(counts.upstream_errors),
                str(counts.silent_ends),
                str(counts.unexpected),
                str(task_exceptions),
                str(tracebacks),
            ]
        )
        print(" | ".join(rows[-1]), file=sys.stderr)
        last_calls, last_time = counts.calls, now

    while (left := until - time.monotonic()) > 0.5:
        await asyncio.sleep(min(every, left))
        sample()
    await asyncio.gather(*load)  # the calls in progress at the end
    sample("end")
    for sample in counts.samples:
        print(f"  ! {sample}", file=sys.stderr)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    args = parser.parse_args()
    cli = str(Path(sys.executable).with_name("claude-proxy"))

    def run() -> int:
        sim_port, gw_port = free_port(), free_port()
        sim_args = f"simulate --port {sim_port} --speed 0.05 --fault-rate {args.fault_rate}"
        sim = spawn("simulator", 1, [cli, *sim_args.split(), "--api-key", API_KEY])
        config = tempfile.NamedTemporaryFile("w", suffix=".yaml")  # noqa: SIM115 - closed below
        # The request log would drown what this reads the log for; warnings still show.
        config.write("log: {level: warning}\n")
        config.flush()
        gw_args = f"serve --port {gw_port} --upstream http://127.0.0.1:{sim_port}"
        gw_args += f" --config {config.name}"
        env = {"ANTHROPIC_API_KEY": API_KEY}
        gateway = spawn("gateway", 0, [cli, *gw_args.split()], env=env)
        try:
            wait_ready(sim, f"http://127.0.0.1:{sim_port}/sim/stats")
            wait_ready(gateway, f"http://127.0.0.1:{gw_port}/readyz")
            idle = rss_mb(gateway.pid)
            rows = asyncio.run(
                soak(
                    f"http://127.0.0.1:{gw_port}",
                    gateway.pid,
                    lambda: gateway.log_tail(1 << 30),
                    args.minutes,
                    args.every,
                    args.clients,
                )
            )
        finally:
            stop(gateway)
            stop(sim)
            config.close()
        header = [
            "minute",
            "gateway RSS MB",
            "calls/s",
            "calls",
            "upstream errors passed on",
            "silent stream ends",
            "unexpected",
            "unread task exceptions",
            "tracebacks",
        ]
        print(
            f"# Soak: {args.minutes:g} min, {args.clients} clients, {args.fault_rate:.0%} "
            f"faults; idle RSS {idle:.0f} MB\n"
        )
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        final = rows[-1]
        ok = final[5] == "0" and final[6] == "0" and final[7] == "0" and final[8] == "0"
        print(
            ("PASS" if ok else "FAIL")
            + "  no silent ends, no unexpected errors, no unread task exceptions"
        )
        # The replay logs fill for about five minutes at this load (10,000 streams); only a
        # run longer than that can show RSS levelling off.
        third = rows[len(rows) * 2 // 3]
        growth = float(final[1]) / float(third[1]) - 1
        if args.minutes >= LEVEL_OFF_MINUTES:
            level = growth < 0.05
            ok = ok and level
            print(
                ("PASS" if level else "FAIL")
                + f"  RSS levels off: {growth:+.0%} over the last third (limit +5 %)"
            )
        else:
            print(f"RSS over the last third: {growth:+.0%} (too short to judge levelling off)")
        return 0 if ok else 1

    return run_benchmark(run)


if __name__ == "__main__":
    sys.exit(main())
