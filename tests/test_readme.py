"""The README's Python examples run as pasted, against a gateway in front of the simulator."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from claude_proxy.server import RunningServer
from tests.conftest import StartGateway

README = Path(__file__).parents[1] / "README.md"
DEMO_URL = "http://127.0.0.1:8000"


def client_examples() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    return [block for block in blocks if DEMO_URL in block]


async def test_the_readme_client_examples_run_as_pasted(
    start_gateway: StartGateway, sim: RunningServer
) -> None:
    gateway = await start_gateway(sim.url)
    examples = client_examples()
    assert len(examples) >= 2  # the SDK call and the resumable stream
    for example in examples:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            example.replace(DEMO_URL, gateway.url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            out, err = await process.communicate()
        assert process.returncode == 0, f"{example}\n{err.decode()[-1500:]}"
        assert out.strip(), example
