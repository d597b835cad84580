"""``serve --workers 2``: two processes on one socket, one set of metrics, restarts, drain."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from claude_proxy.config import ConfigError, load_settings
from tests.conftest import SIM_KEY, StartSim
from tests.helpers import API_HEADERS, message_body
from tests.processes import gateway_process
from tests.state.redis_fixtures import key_prefix, redis_url

__all__ = ["key_prefix", "redis_url"]


def workers_of(pid: int) -> set[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(child) for child in children}


def fresh() -> aiohttp.ClientSession:
    """A new connection each time, so the kernel may hand it to either worker."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


async def fresh_get(url: str) -> str:
    async with fresh() as session, session.get(url) as r:
        return await r.text()


def served_by(metrics_dir: Path, pid: int, tmp_path: Path) -> float:
    """Requests one worker recorded: its own histogram file, collected on its own."""
    alone = tmp_path / f"alone-{pid}"
    alone.mkdir()
    shutil.copy(metrics_dir / f"histogram_{pid}.db", alone)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
    return sum(
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "api_request_duration_seconds_count"
    )


async def requests_counted(url: str) -> float:
    text = await fresh_get(f"{url}/metrics")
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "api_request_duration_seconds_count"
    )


async def post(url: str) -> int:
    body = message_body()
    async with (
        fresh() as session,
        session.post(f"{url}/v1/messages", json=body, headers=API_HEADERS) as r,
    ):
        await r.read()
        return r.status


def config(sim_url: str, redis_url: str, prefix: str) -> dict[str, Any]:
    return {
        "workers": 2,
        "state": redis_url,
        "upstreams": [{"name": "sim", "base_url": sim_url, "api_key": SIM_KEY}],
        "admission": {"key_prefix": prefix + "admission:"},
        "streams": {"replay": {"key_prefix": prefix + "replay:"}},
        "shutdown": {"drain_seconds": 5},
    }


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
async def test_two_workers_share_the_socket_and_the_metrics(
    start_sim: StartSim, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    sim = await start_sim()
    metrics_dir = tmp_path / "metrics"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    settings = config(sim.url, redis_url, key_prefix)
    async with gateway_process(settings, tmp_path, env=env) as gateway:
        supervisor = gateway.process.pid
        async with asyncio.timeout(20):
            while len(workers_of(supervisor)) < 2:
                await asyncio.sleep(0.05)
        assert await asyncio.gather(*(post(gateway.url) for _ in range(40))) == [200] * 40
        # Whichever worker answers, /metrics adds up both; and both did serve.
        assert [await requests_counted(gateway.url) for _ in range(6)] == [40] * 6
        served = [served_by(metrics_dir, pid, tmp_path) for pid in workers_of(supervisor)]
        assert sum(served) == 40 and min(served) > 0, served

        victim = min(workers_of(supervisor))
        os.kill(victim, signal.SIGKILL)
        async with asyncio.timeout(20):
            while victim in workers_of(supervisor) or len(workers_of(supervisor)) < 2:
                await asyncio.sleep(0.05)
        assert await asyncio.gather(*(post(gateway.url) for _ in range(10))) == [200] * 10
        # A dead worker's counts stay counted; its in-flight gauges are gone.
        assert await requests_counted(gateway.url) == 50
        process = gateway.process
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            assert await process.wait() == 0


def test_several_workers_need_shared_state(tmp_path: Path) -> None:
    path = tmp_path / "workers.yaml"
    path.write_text("workers: 4\n")
    with pytest.raises(ConfigError, match="state: redis"):
        load_settings(path, env={})
