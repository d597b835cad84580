"""The dashboard in headless Chromium, under a live stream of requests.

Chromium is driven over the DevTools protocol (aiohttp's WebSocket client), so the
page polls in real time while the test keeps feeding observations; the charts are
then checked pixel by pixel in the screenshot.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import random
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from claude_proxy.admission.base import Usage
from claude_proxy.observability import Metrics, add_dashboard_routes
from tests.observability.png import decode_png

SCREENSHOT = Path("/tmp/dashboard.png")
CYAN = (0x38, 0xBD, 0xF8)  # COLORS[0] of dashboard.html: the first line of every chart
RED = (0xF8, 0x71, 0x71)
HISTORY_LENGTH = "typeof series === 'undefined' ? 0 : (series.rps || []).length"
POLLS = 40  # points of history drawn before the charts are checked
CHARTS = ("c-rps", "c-lat", "c-ttft", "c-load", "c-tok", "c-queue")
# Every series behind a chart, each of which the feed keeps above zero.
SERIES = (
    "rps", "err", "p50", "p95", "ttft50", "ttft95", "inflight", "streams", "tok_in", "tok_out",
    "tps", "queue:acme", "queue:globex", "queue:initech",
)  # fmt: skip
# Run before the page's own script: uncaught errors are kept for the test to read.
CATCH_ERRORS = (
    "window.__errors = [];"
    "addEventListener('error', e => __errors.push(String(e.message)));"
    "addEventListener('unhandledrejection', e => __errors.push(String(e.reason)));"
)


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    reason = "no Chromium binary found (Debian: apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


async def feed(metrics: Metrics, rng: random.Random) -> None:
    """A few hundred requests a second over three tenants, with errors and queues."""
    tenants = ("acme", "globex", "initech")
    open_requests = 0
    for i in itertools.count():
        tenant = tenants[i % 3]
        stream = rng.random() < 0.6
        status, error = rng.choices(
            [(200, None), (429, "rate_limit_error"), (529, "overloaded_error"), (500, None)],
            weights=[90, 4, 4, 2],
        )[0]
        metrics.request_started()
        metrics.request_finished(
            tenant=tenant, model="claude-sonnet-4-5-20250929", stream=stream, status=status,
            error_type=error, duration=rng.lognormvariate(0, 0.6), overhead=0.0004,
            ttft=rng.lognormvariate(-1, 0.4) if stream and status == 200 else None,
            usage=Usage(rng.randint(50, 500), rng.randint(10, 300)) if status == 200 else None,
        )  # fmt: skip
        metrics.upstream_attempt("primary", "ok" if status == 200 else f"http_{status}", 0.5)
        if status != 200:
            metrics.retry()
        # Long requests held open: the in-flight and open-stream gauges move.
        if rng.random() < 0.5 and open_requests < 30:
            metrics.request_started()
            open_requests += 1
            if open_requests % 3:
                metrics.stream_opened()
        elif open_requests:
            metrics.request_finished(
                tenant=tenant, model="claude-opus-4-1", stream=True, status=200, duration=2.0
            )
            if open_requests % 3:
                metrics.stream_closed()
            open_requests -= 1
        metrics.set_tenant_load(tenant, in_flight=rng.randint(1, 8), queued=rng.randint(0, 12))
        metrics.set_window(32)
        metrics.set_breaker("primary", 0)
        metrics.set_breaker("backup", 2 if i % 200 < 100 else 1)
        await asyncio.sleep(0.003)


@contextlib.asynccontextmanager
async def serve(metrics: Metrics) -> AsyncIterator[str]:
    app = web.Application()
    add_dashboard_routes(app, metrics.snapshot)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def chromium(binary: str, profile: Path) -> AsyncIterator[int]:
    """Headless Chromium with DevTools on a free port; yields the port.

    It runs in a process group of its own, ended whole afterwards (renderers too).
    """
    log_path = profile.with_suffix(".log")
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1",
            f"--user-data-dir={profile}", "--window-size=1280,900",
            "--remote-debugging-port=0", "--remote-allow-origins=*", "about:blank",
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    try:
        # "PORT\nPATH\n" once the DevTools server listens.
        port_file = profile / "DevToolsActivePort"
        async with asyncio.timeout(30):
            while len(lines := _read(port_file).splitlines()) < 2:
                if proc.returncode is not None:
                    raise AssertionError(
                        f"Chromium exited with {proc.returncode}:\n{_read(log_path)[-3000:]}"
                    )
                await asyncio.sleep(0.05)
        yield int(lines[0])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


async def page_target(http: aiohttp.ClientSession, port: int) -> str:
    """The WebSocket URL of the browser's one tab, once it is listed."""
    async with asyncio.timeout(20):
        while True:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                pages = [t for t in await response.json() if t["type"] == "page"]
            if pages:
                url: str = pages[0]["webSocketDebuggerUrl"]
                return url
            await asyncio.sleep(0.05)


class DevTools:
    """Just enough of the DevTools protocol: send a command, wait for its answer."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        await self._ws.send_json({"id": call_id, "method": method, "params": params})
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            reply = message.json()
            if reply.get("id") == call_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result
        raise AssertionError("DevTools connection closed")

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(result["exceptionDetails"])
        return result["result"].get("value")


async def test_dashboard_renders_live_charts(tmp_path: Path) -> None:
    binary = find_chromium()
    metrics = Metrics(["acme", "globex", "initech"])
    feeder = asyncio.create_task(feed(metrics, random.Random(6)))
    try:
        async with (
            serve(metrics) as base,
            chromium(binary, tmp_path / "profile") as port,
            aiohttp.ClientSession() as http,
        ):
            tab = await page_target(http, port)
            async with http.ws_connect(tab, max_msg_size=0) as ws:
                devtools = DevTools(ws)
                await devtools.call("Page.enable")
                await devtools.call("Page.addScriptToEvaluateOnNewDocument", source=CATCH_ERRORS)
                await devtools.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=1280, height=900, deviceScaleFactor=1, mobile=False,
                )  # fmt: skip
                # The page polls every 100 ms (its fastest); by default every 2 s.
                await devtools.call("Page.navigate", url=f"{base}/dashboard?interval=100")
                async with asyncio.timeout(30):
                    while (await devtools.evaluate(HISTORY_LENGTH)) < POLLS:
                        await asyncio.sleep(0.1)
                await check_page(devtools)
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder


async def check_page(devtools: DevTools) -> None:
    assert await devtools.evaluate("__errors") == []
    assert await devtools.evaluate("document.getElementById('status').className") == ""
    assert "every 0.1 s" in await devtools.evaluate("document.getElementById('status').textContent")
    # The numbers behind the charts: a value at (nearly) every poll, not all zero.
    points = await devtools.evaluate(
        f"Object.fromEntries({list(SERIES)!r}.map(n => [n, series[n] || []]))"
    )
    for name in SERIES:
        values = [v for v in points[name] if v is not None]
        assert len(values) >= POLLS - 2 and max(values) > 0, (name, points[name])
    for tile in ("t-rps", "t-err", "t-p95", "t-ttft", "t-inflight", "t-streams", "t-tps"):
        text = await devtools.evaluate(f"document.getElementById('{tile}').textContent")
        assert text and text != "\u2013", tile  # the page's placeholder: no number yet
    tenants = await devtools.evaluate("document.getElementById('tenants').textContent")
    assert all(name in tenants for name in ("acme", "globex", "initech"))

    shot = await devtools.call("Page.captureScreenshot", format="png")
    png = base64.b64decode(shot["data"])
    await asyncio.to_thread(SCREENSHOT.write_bytes, png)
    full = decode_png(png)
    assert (full.width, full.height) == (1280, 900)

    rects = await devtools.evaluate(
        "Object.fromEntries([...document.querySelectorAll('canvas')].map(c => {"
        " const r = c.getBoundingClientRect();"
        " return [c.id, {x: r.x, y: r.y, width: r.width, height: r.height}]; }))"
    )
    for chart in (*CHARTS, "c-err"):
        rect = rects[chart]
        assert rect["width"] > 200 and rect["height"] > 100, chart
        clip = await devtools.call(
            "Page.captureScreenshot", format="png", clip={**rect, "scale": 1}
        )
        image = decode_png(base64.b64decode(clip["data"]))
        colour = RED if chart == "c-err" else CYAN
        # A drawn line: pixels of exactly its colour (nothing else in a chart uses it;
        # axes and labels are grey), across the columns of the polls so far ...
        line = image.where(colour)
        assert len(line) > 60, (chart, len(line))
        columns = {x for x, _ in line}
        assert max(columns) - min(columns) > image.width / 6, (chart, min(columns), max(columns))
        # ... and off the zero line at the bottom: the data is drawn, not a flat zero.
        assert min(y for _, y in line) < image.height * 0.7, (chart, min(y for _, y in line))
