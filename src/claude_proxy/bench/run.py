"""Run a bench: start what is needed, send every row's requests through the gateway one
at a time, read the gateway's memory around each row, and stop what was started.

Three ways to choose what is measured (``Target``):

* nothing given: the built-in simulator, its latency model on, as a child process, and a
  gateway in front of it, as another child (its memory is its own);
* ``upstream``: a gateway started in front of that URL (the real API with a key);
* ``gateway``: a gateway that is already running (its memory only with its pid).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NoReturn, TextIO

import aiohttp

from claude_proxy.bench import processes
from claude_proxy.bench.call import API_VERSION, CallFailed, timed_call
from claude_proxy.bench.plan import CACHE_HEADER, Case, Plan
from claude_proxy.bench.prompt import long_answer_request, question_request, report_for
from claude_proxy.bench.report import Report, RowResult
from claude_proxy.document_cli import error_text

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["BenchFailed", "Target", "run_bench"]

# The simulator makes an answer this many tokens long (the API ignores the header): an
# answer longer than max_tokens is cut there, as a real long answer would be.
ANSWER_TOKENS_HEADER = "x-sim-answer-tokens"
_CLIENT_KEY = "claude-proxy-bench"  # what the bench shows a gateway that holds its own key
_STARTED = "a gateway started for the bench"
_CHECK_TIMEOUT = aiohttp.ClientTimeout(total=15)
# A 4096-token answer from the real API can take a minute or more; no read timeout.
_CALL_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30)


class BenchFailed(Exception):
    """Something the user must fix or know: one line, no traceback."""


@dataclass(frozen=True, slots=True)
class Target:
    upstream: str | None = None  # None: the built-in simulator
    api_key: str | None = None  # the upstream's key (or, with ``gateway``, that gateway's)
    gateway: str | None = None  # a running gateway to measure instead of starting one
    gateway_pid: int | None = None  # its pid, for its memory


@dataclass(slots=True)
class _Measured:
    url: str  # the gateway's base URL
    pid: int | None  # the gateway's process, when its memory can be read
    upstream: str  # for the report
    gateway: str
    client_key: str
    comparable: bool = True  # False: a simulator made faster than the design note's


async def run_bench(plan: Plan, target: Target, progress: TextIO, *, bar: bool) -> Report:
    """Measure every row of ``plan``; progress (a tqdm bar when ``bar``, else a line a row)
    goes to ``progress``."""
    started = time.monotonic()
    _stop_on_signals()
    async with _servers(plan, target) as measured:
        report = Report(
            plan,
            measured.upstream,
            measured.gateway,
            datetime.now(UTC).strftime("%Y-%m-%d"),
            comparable=measured.comparable,
        )
        # This run's prompts share no cached prefix, and no whole request, with another's.
        nonce = secrets.token_hex(4)
        async with aiohttp.ClientSession(timeout=_CALL_TIMEOUT) as session:
            url = measured.url.rstrip("/") + "/v1/messages"
            await _warm_up(session, url, plan, measured.client_key, nonce)
            if measured.pid is not None:
                report.idle = processes.memory(measured.pid)
            with _progress(plan, progress, bar) as shown:
                for case in plan.cases():
                    row = RowResult(case)
                    if measured.pid is not None:
                        report.peak_per_row &= processes.reset_peak(measured.pid)
                    await _row(session, url, plan, case, row, measured.client_key, nonce, shown)
                    if measured.pid is not None:
                        row.memory = processes.memory(measured.pid)
                    report.rows.append(row)
                    shown.write(
                        f"{case.label}: latency p50 {row.ms('latency', 50):,.0f} ms, "
                        f"TTFT p50 {row.ms('ttft', 50):,.0f} ms",
                        file=progress,
                    )
    report.seconds = time.monotonic() - started
    return report


def _stop_on_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP (the terminal closed) cancel the run, whose ``finally``
    blocks stop the simulator and the gateway: they run in sessions of their own, so no
    signal reaches them otherwise (and if the bench dies anyway, they die with it: see
    ``processes``)."""
    task = asyncio.current_task()
    if task is None or threading.current_thread() is not threading.main_thread():
        return  # signal handlers belong to the main thread (and CliRunner runs elsewhere)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, task.cancel)


async def _row(
    session: aiohttp.ClientSession,
    url: str,
    plan: Plan,
    case: Case,
    row: RowResult,
    client_key: str,
    nonce: str,
    shown: tqdm[NoReturn],
) -> None:
    headers = _headers(client_key, case.max_tokens)
    if case.cache == "off":
        headers[CACHE_HEADER] = "off"
    report = ""
    if case.input_tokens is not None:
        # One document per row, opened by a label of its own: the "on" row's requests
        # share their prefix with each other, and with nothing else.
        label = f"run {nonce}, {case.input_tokens} tokens, cache {case.cache}"
        report = report_for(plan.model, case.input_tokens, case.max_tokens, label)
    shown.set_description_str(case.label)
    for run in range(plan.runs):
        if case.input_tokens is None:
            body = long_answer_request(plan.model, case.max_tokens, run, nonce)
        else:
            body = question_request(plan.model, report, case.max_tokens, run)
        try:
            row.samples.append(await timed_call(session, url, body, headers))
        except CallFailed as exc:
            raise BenchFailed(f"{case.label}, request {run + 1}: {exc}") from None
        except aiohttp.ClientError as exc:
            raise BenchFailed(
                f"{case.label}, request {run + 1}: the connection to the gateway failed: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        shown.update(1)


async def _warm_up(
    session: aiohttp.ClientSession, url: str, plan: Plan, key: str, nonce: str
) -> None:
    """One small request first: connections open, code paths loaded, and a wrong model or
    key reported before any row starts."""
    body = long_answer_request(plan.model, 8, 0, nonce)
    try:
        await timed_call(session, url, body, _headers(key, 8))
    except CallFailed as exc:
        raise BenchFailed(f"the first request failed: {exc}") from None
    except aiohttp.ClientError as exc:
        raise BenchFailed(f"cannot reach the gateway at {url}: {exc}") from None


def _headers(key: str, max_tokens: int) -> dict[str, str]:
    return {
        "x-api-key": key,
        "anthropic-version": API_VERSION,
        "content-type": "application/json",
        ANSWER_TOKENS_HEADER: str(2 * max_tokens),
        # Measured answers come from the upstream: a gateway's response cache (one that
        # caches sampled requests too) must neither answer nor keep them.
        "cache-control": "no-store",
    }


@contextlib.contextmanager
def _progress(plan: Plan, file: TextIO, bar: bool) -> Iterator[tqdm[NoReturn]]:
    from tqdm import tqdm  # only for this command: the gateway need not load it

    shown: tqdm[NoReturn] = tqdm(
        total=plan.requests, unit="req", file=file, disable=not bar, dynamic_ncols=True
    )
    try:
        yield shown
    finally:
        shown.close()


@contextlib.asynccontextmanager
async def _servers(plan: Plan, target: Target) -> AsyncIterator[_Measured]:
    if target.gateway is not None:
        await _check_gateway(target.gateway)
        yield _Measured(
            target.gateway,
            target.gateway_pid,
            "its upstream",
            f"the gateway at {target.gateway}",
            target.api_key or _CLIENT_KEY,
        )
        return
    try:
        if target.upstream is None:
            key = "sk-ant-bench-" + secrets.token_hex(8)
            async with (
                processes.simulator(plan.speed, key) as sim,
                processes.gateway(sim.url, key) as gateway,
            ):
                upstream = f"the simulator (speed {plan.speed:g})"
                yield _Measured(
                    gateway.url, gateway.pid, upstream, _STARTED, _CLIENT_KEY, plan.speed == 1
                )
            return
        await _check_upstream(target.upstream, target.api_key)
        async with processes.gateway(target.upstream, target.api_key) as gateway:
            yield _Measured(gateway.url, gateway.pid, target.upstream, _STARTED, _CLIENT_KEY)
    except processes.StartFailed as exc:
        raise BenchFailed(str(exc)) from None


async def _check_upstream(upstream: str, api_key: str | None) -> None:
    """GET /v1/models: an upstream that is down, not an API, or refuses the key is named
    now, in one line, not as a gateway's 502 on every request."""
    headers = {"x-api-key": api_key or _CLIENT_KEY, "anthropic-version": API_VERSION}
    try:
        async with (
            aiohttp.ClientSession(timeout=_CHECK_TIMEOUT) as session,
            session.get(upstream.rstrip("/") + "/v1/models", headers=headers) as response,
        ):
            body = await response.read()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        raise BenchFailed(f"cannot reach the upstream at {upstream}: {reason}") from None
    if response.status in (401, 403):
        raise BenchFailed(
            f"the upstream at {upstream} refused the key ({error_text(response.status, body)}); "
            "give it with --api-key or ANTHROPIC_API_KEY"
        )
    if response.status != 200:
        raise BenchFailed(
            f"the upstream at {upstream} does not answer like the Messages API "
            f"(GET /v1/models: {error_text(response.status, body)})"
        )


async def _check_gateway(gateway: str) -> None:
    try:
        async with (
            aiohttp.ClientSession(timeout=_CHECK_TIMEOUT) as session,
            session.get(gateway.rstrip("/") + "/healthz") as response,
        ):
            await response.read()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        raise BenchFailed(f"cannot reach the gateway at {gateway}: {reason}") from None
