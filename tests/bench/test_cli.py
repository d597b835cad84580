"""``claude-proxy bench``: a quick run against the simulator, as a process of its own, and
the errors a user meets (an upstream that is down or refuses the key, no matplotlib)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from click.testing import CliRunner
from PIL import Image

from claude_proxy.bench.plan import Plan
from claude_proxy.cli import main
from claude_proxy.response_cache import ResponseCacheSettings
from claude_proxy.server import RunningServer
from claude_proxy.sim import JOURNAL
from claude_proxy.sim.models import lookup_model
from tests.api.test_metrics import scrape, total
from tests.conftest import StartGateway, StartSim

CLI = [sys.executable, "-m", "claude_proxy", "bench"]
# The outside environment must not choose the keys or the gateway's config.
HIDDEN_ENV = ("ANTHROPIC_API_KEY", "CLAUDE_PROXY_BENCH_KEY", "CLAUDE_PROXY_CONFIG")
QUICK_MAX_TOKENS = [16, 128, 256, 512]
QUICK_INPUTS = [(300, "off"), (300, "on"), (1_000, "off"), (1_000, "on")]
QUICK_INPUTS += [(3_000, "off"), (3_000, "on")]


async def start_bench(
    *args: str, output: int = asyncio.subprocess.PIPE
) -> asyncio.subprocess.Process:
    """The bench CLI, without the outside environment's keys and config."""
    env = {k: v for k, v in os.environ.items() if k not in HIDDEN_ENV}
    return await asyncio.create_subprocess_exec(
        *CLI, *args, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=output
    )


async def run_bench(*args: str) -> tuple[int, bytes, str]:
    process = await start_bench(*args)
    async with asyncio.timeout(90):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out, err.decode()


def table_rows(text: str, first_header: str) -> list[list[str]]:
    """The body rows of the markdown table whose first column is ``first_header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


async def test_a_quick_run_measures_every_row_and_draws_the_chart(tmp_path: Path) -> None:
    chart = tmp_path / "bench.png"
    code, out, err = await run_bench("--quick", "--json", "--no-progress", "--out", str(chart))
    assert code == 0, err[-3000:]
    result: dict[str, Any] = orjson.loads(out)
    rows = result["rows"]

    by_output = [row for row in rows if row["series"] == "max_tokens"]
    by_input = [row for row in rows if row["series"] == "input"]
    assert [row["max_tokens"] for row in by_output] == QUICK_MAX_TOKENS
    assert [(row["input_tokens_asked"], row["prompt_cache"]) for row in by_input] == QUICK_INPUTS
    for row in rows:
        assert row["runs"] == len(row["samples"]) == 3
        for timing in ("ttft_ms", "latency_ms"):
            assert 0 < row[timing]["p50"] <= row[timing]["p95"] < 5_000, row
        assert row["ttft_ms"]["p50"] <= row["latency_ms"]["p50"], row
        assert all(s["ttft_ms"] <= s["latency_ms"] for s in row["samples"]), row
        # The gateway's own memory, read from its process around the row.
        assert 10 < row["rss_mb"] <= row["peak_rss_mb"] < 2_000, row
    # The simulator makes each answer fill max_tokens, and a longer answer takes longer.
    for row in by_output:
        assert row["output_tokens"] == row["max_tokens"]
        assert {s["stop_reason"] for s in row["samples"]} == {"max_tokens"}
    latencies = [row["latency_ms"]["p50"] for row in by_output]
    assert latencies == sorted(latencies) and latencies[-1] > 2 * latencies[0], latencies
    # A longer document is more input, as the upstream counted it.
    counted = [row["input_tokens"] for row in by_input if row["prompt_cache"] == "off"]
    assert counted == sorted(counted) and counted[0] > 100, counted
    # Caching off means no cache reads, whoever else caches. On, the gateway's breakpoint
    # lets the second and later requests of a row read the document from the cache, once
    # it is as long as the simulator's minimum for the model (2,048 for Sonnet 4.6).
    spec = lookup_model(result["model"])
    assert spec is not None
    long_enough = [row for row in by_input if row["input_tokens"] >= spec.min_cacheable_tokens]
    assert long_enough, "no quick input row is long enough to be cached"
    for row in by_input:
        cached = row["prompt_cache"] == "on" and row in long_enough
        reads = [s["cache_read_input_tokens"] for s in row["samples"]]
        if cached:
            assert row["cache_reads"] == 2 and reads[0] == 0 and min(reads[1:]) > 0, row
            assert row["samples"][0]["cache_creation_input_tokens"] > 0, row  # the first writes
            assert row["cache_read_input_tokens"] > 0.9 * row["input_tokens"], row
        else:
            assert row["cache_reads"] == 0 and not any(reads), row
    assert result["idle_rss_mb"] > 10

    # The markdown tables (on stderr when stdout holds the JSON) have the same rows.
    assert [cells[0] for cells in table_rows(err, "max_tokens")] == [
        str(n) for n in QUICK_MAX_TOKENS
    ]
    inputs = table_rows(err, "input tokens")
    assert [(cells[0], cells[2]) for cells in inputs] == [
        (f"{n:,}", cache) for n, cache in QUICK_INPUTS
    ]

    assert f"chart: {chart}" in err
    with Image.open(chart) as image:
        assert image.format == "PNG"
        assert image.size[0] > 600 and image.size[1] > 200
        image.load()  # decodes every row: a truncated or corrupt file fails here


async def test_runs_are_never_answered_from_a_gateways_response_cache(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    """Against a gateway whose response cache takes sampled requests too, a second run
    would be answered from the first's entries: each request is new and says no-store."""
    sim = await start_sim(journal=100)
    cache = ResponseCacheSettings(enabled=True, allow_sampling=True)
    gateway = await start_gateway(sim.url, response_cache=cache)
    for _ in range(2):
        result = await asyncio.to_thread(invoke, "--quick", "--no-chart", "--gateway", gateway.url)
        assert result.exit_code == 0, result.output
    bodies = [orjson.dumps(entry.body) for entry in sim.runner.app[JOURNAL].entries]
    assert len(bodies) == len(set(bodies)) == 2 * (Plan.quick().requests + 1)  # + warm-ups
    _, series = await scrape(http, gateway)
    assert total(series, "api_response_cache_hits_total") == 0
    assert total(series, "api_response_cache_bypasses_total", reason="no-store") == len(bodies)
    assert total(series, "api_response_cache_stores_total") == 0


def children_of(pid: int) -> list[int]:
    return [
        int(child)
        for task in os.listdir(f"/proc/{pid}/task")
        for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
    ]


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGKILL])
async def test_the_servers_it_started_end_with_it(signum: signal.Signals) -> None:
    """A closed terminal (SIGHUP) stops them as Ctrl-C does; and if the bench is killed
    outright, they die with it: a gateway left behind would hold the upstream's key on an
    unauthenticated port."""
    process = await start_bench(
        "--quick", "--no-chart", "--no-progress", output=asyncio.subprocess.DEVNULL
    )
    servers: list[int] = []
    try:
        async with asyncio.timeout(30):
            while len(servers := children_of(process.pid)) < 2:  # the simulator, the gateway
                await asyncio.sleep(0.02)
        process.send_signal(signum)
        async with asyncio.timeout(10):
            await process.communicate()
            while any(running(pid) for pid in servers):
                await asyncio.sleep(0.02)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        for pid in servers:  # left behind by a failure: not by the next test's run
            if running(pid):
                os.kill(pid, signal.SIGKILL)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def invoke(*args: str, **env: str) -> Any:
    return CliRunner().invoke(
        main, ["bench", *args], env={**dict.fromkeys(HIDDEN_ENV), **env}, catch_exceptions=False
    )


class KeyTaker:
    """A running gateway that writes down the key each request brings, and refuses it."""

    def __init__(self) -> None:
        self.keys: list[str | None] = []
        self.runner: web.AppRunner | None = None

    async def start(self, host: str = "127.0.0.1") -> str:
        app = web.Application()
        app.router.add_get("/healthz", self._health)
        app.router.add_post("/v1/messages", self._messages)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, 0)
        await site.start()
        port = self.runner.addresses[0][1]
        return f"http://{host}:{port}"

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _messages(self, request: web.Request) -> web.Response:
        self.keys.append(request.headers.get("x-api-key"))
        error = {"type": "authentication_error", "message": "invalid x-api-key"}
        return web.json_response({"type": "error", "error": error}, status=401)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def test_a_running_gateway_never_gets_the_shells_api_key() -> None:
    taker = KeyTaker()
    url = await taker.start()
    try:
        shell_key = {"ANTHROPIC_API_KEY": "sk-ant-api03-the-shells-own"}
        for args, env in [
            ((), shell_key),
            ((), {**shell_key, "CLAUDE_PROXY_BENCH_KEY": "gateway-client-key"}),
            (("--api-key", "given-key"), shell_key),
        ]:
            result = await asyncio.to_thread(
                invoke, "--quick", "--no-chart", "--gateway", url, *args, **env
            )
            assert result.exit_code == 1 and "the first request failed" in result.output
            assert "warning" not in result.output  # loopback: nothing crosses a network
        assert taker.keys == ["claude-proxy-bench", "gateway-client-key", "given-key"]
    finally:
        await taker.stop()


def outward_address() -> str | None:
    """This host's address on its network (no packet is sent), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = str(sock.getsockname()[0])
    return None if address.startswith("127.") else address


async def test_a_key_sent_over_plain_http_to_another_host_is_warned_about() -> None:
    address = outward_address()
    if address is None:
        pytest.skip("no network address but loopback")
    taker = KeyTaker()
    url = await taker.start(address)
    try:
        result = await asyncio.to_thread(
            invoke, "--quick", "--no-chart", "--gateway", url, "--api-key", "gw-key"
        )
        assert f"warning: the key goes to {url} over plain http" in result.output
        assert "gw-key" not in result.output
        result = await asyncio.to_thread(invoke, "--quick", "--no-chart", "--gateway", url)
        assert "warning" not in result.output  # no key, nothing to warn about
    finally:
        await taker.stop()


def test_an_upstream_that_is_down_is_named_and_fails() -> None:
    upstream = f"http://127.0.0.1:{closed_port()}"
    result = invoke("--quick", "--no-chart", "--upstream", upstream)
    assert result.exit_code == 1
    assert f"Error: cannot reach the upstream at {upstream}" in result.output
    assert "Traceback" not in result.output


def test_an_upstream_that_is_not_a_url_is_a_usage_error() -> None:
    result = invoke("--quick", "--no-chart", "--upstream", "api.anthropic.com")
    assert result.exit_code == 2
    assert "'api.anthropic.com' is not an http:// or https:// URL" in result.output


async def test_an_upstream_that_refuses_the_key_says_so(start_sim: StartSim) -> None:
    sim: RunningServer = await start_sim(api_key="sk-ant-the-right-key")
    result = await asyncio.to_thread(
        invoke, "--quick", "--no-chart", "--upstream", sim.url, "--api-key", "sk-ant-wrong"
    )
    assert result.exit_code == 1
    assert f"the upstream at {sim.url} refused the key (authentication_error" in result.output
    assert "sk-ant-wrong" not in result.output


def test_without_matplotlib_it_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    result = invoke("--quick")
    assert result.exit_code == 1
    assert "pip install 'claude-proxy[bench]'" in result.output
    assert "--no-chart" in result.output
