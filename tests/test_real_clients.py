"""The clients people point at a gateway, through it, against the simulator: the Node SDK
and the Claude Code CLI (its default model, two turns with --continue, a tool round trip).
Installed from npm by ``tests/npm.py``; the Python SDK runs all through the suite."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from claude_proxy.pipeline.call import Call, Route
from claude_proxy.server import RunningServer
from tests.conftest import StartGateway
from tests.npm import JS, node_modules

__all__ = ["node_modules"]


class SeenBodies:
    """A stage that keeps every Messages body that passed the gateway."""

    name = "seen_bodies"
    routes = frozenset({Route.MESSAGES})

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def on_request(self, call: Call) -> None:
        self.bodies.append(dict(call.body))


async def run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(120):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, f"{args[0]} failed: {out.decode()[-800:]} {err.decode()[-800:]}"
    return out.decode()


def client_env(gateway: RunningServer, home: Path) -> dict[str, str]:
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),  # Claude Code keeps its settings and sessions here
        "ANTHROPIC_BASE_URL": gateway.url,
        "ANTHROPIC_API_KEY": "client-key",  # not the simulator's: the gateway swaps it
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


async def test_the_node_sdk_works_through_the_gateway(
    node_modules: Path, start_gateway: StartGateway, sim: RunningServer, tmp_path: Path
) -> None:
    gateway = await start_gateway(sim.url)
    env = client_env(gateway, tmp_path / "home")
    seen = json.loads(await run(["node", str(JS / "sdk_through_gateway.mjs")], env, JS))
    assert set(seen["message"]) == {"type", "output_tokens"}
    assert seen["message"]["type"] == "text"
    assert seen["message"]["output_tokens"] > 0
    assert seen["stream"]["text_matches"] is True
    assert seen["batch"]["status"] == "ended"
    assert seen["batch"]["results_url"].startswith(gateway.url)
    assert sorted(seen["batch"]["results"]) == [["one", "succeeded"], ["two", "succeeded"]]
    assert seen["file"] == {"size": 20500, "same_bytes": True}


@pytest.fixture
async def claude(
    node_modules: Path, start_gateway: StartGateway, sim: RunningServer, tmp_path: Path
) -> tuple[Any, SeenBodies, Path]:
    seen = SeenBodies()
    gateway = await start_gateway(sim.url, extra_stages=lambda _: [seen])
    env = client_env(gateway, tmp_path / "home")
    work = tmp_path / "work"
    work.mkdir()

    async def ask(*args: str) -> dict[str, Any]:
        cli = str(node_modules / ".bin" / "claude")
        result: dict[str, Any] = json.loads(
            await run([cli, "-p", *args, "--output-format", "json"], env, work)
        )
        assert result["type"] == "result" and result["is_error"] is False, result
        return result

    return ask, seen, work


async def test_claude_code_answers_with_its_default_model_and_continues(
    claude: tuple[Any, SeenBodies, Path],
) -> None:
    ask, seen, _ = claude
    first = await ask("Say hello to the river")
    assert first["result"] and first["num_turns"] == 1  # no tool for a greeting
    # Its default model, and the mid-conversation system turn it sends with it.
    assert seen.bodies[0]["model"].startswith("claude-opus")
    assert any(m["role"] == "system" for m in seen.bodies[0]["messages"])
    await ask("And now say goodbye", "--continue")
    texts = json.dumps(seen.bodies[-1]["messages"])
    assert "Say hello to the river" in texts and "And now say goodbye" in texts


async def test_claude_code_makes_a_tool_round_trip(claude: tuple[Any, SeenBodies, Path]) -> None:
    ask, seen, work = claude
    (work / "notes.txt").write_text("The river bends north.\n")
    result = await ask("Use the Read tool to read notes.txt")
    assert result["num_turns"] >= 2
    calls = [
        block
        for body in seen.bodies
        for message in body["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
    ]
    used = {b["id"] for b in calls if b.get("type") == "tool_use" and b["name"] == "Read"}
    answered = {b["tool_use_id"] for b in calls if b.get("type") == "tool_result"}
    assert used and used <= answered
