"""The commands a user types: serve and demo run as real processes and stop on a signal."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from claude_proxy.server import RunningServer
from tests.conftest import SIM_KEY
from tests.helpers import API_HEADERS, message_body
from tests.processes import read_url

CLI = [sys.executable, "-m", "claude_proxy"]


async def stop(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGINT)
    async with asyncio.timeout(20):
        return await process.wait()


async def test_serve_relays_and_stops_on_sigterm(sim: RunningServer, tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("upstreams:\n  - name: sim\n    api_key: ${SIM_KEY}\n")
    env = {**os.environ, "SIM_KEY": SIM_KEY, "ANTHROPIC_API_KEY": "not-used"}
    process = await asyncio.create_subprocess_exec(
        *CLI, "serve", "--config", str(config), "--port", "0", "--upstream", sim.url,
        env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        url = await read_url(process.stderr, b"listening on")
        async with aiohttp.ClientSession() as http:
            post = http.post(f"{url}/v1/messages", json=message_body(), headers=API_HEADERS)
            async with post as r:
                assert r.status == 200
                assert (await r.json())["type"] == "message"
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await process.wait() == 0


async def test_demo_serves_the_simulator_through_the_gateway() -> None:
    process = await asyncio.create_subprocess_exec(
        *CLI, "demo", "--port", "0", "--speed", "0", stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        url = await read_url(process.stdout, b"gateway")
        sim_url = await read_url(process.stdout, b"simulator")
        key_line = (await process.stdout.readline()).decode()
        sim_key = key_line.rsplit(" is ", 1)[1].strip(")\n ")
        async with aiohttp.ClientSession() as http:
            body = message_body(stream=True)
            async with http.post(f"{url}/v1/messages", json=body, headers=API_HEADERS) as r:
                assert r.status == 200
                assert b"event: message_stop" in await r.read()
            # The banner's key opens the simulator itself, as it says.
            direct = {**API_HEADERS, "x-api-key": sim_key}
            async with http.post(
                f"{sim_url}/v1/messages", json=message_body(), headers=direct
            ) as r:
                assert r.status == 200
    finally:
        assert await stop(process) == 0


async def test_a_busy_port_is_one_clear_line_for_each_command(sim: RunningServer) -> None:
    busy = sim.url.rsplit(":", 1)[1]  # the simulator holds it
    for command in (
        ["serve", "--port", busy],
        ["simulate", "--port", busy],
        ["demo", "--port", busy],
    ):
        process = await asyncio.create_subprocess_exec(
            *CLI, *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        async with asyncio.timeout(30):
            out, err = await process.communicate()
        said = (out + err).decode()
        assert process.returncode == 1, said
        assert "Traceback" not in said
        assert f"Error: cannot listen on 127.0.0.1:{busy}: the port is in use" in said
