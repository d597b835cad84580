"""Gateway processes for tests that need several replicas or real signals."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

_URL = re.compile(rb"(http://127\.0\.0\.1:\d+)")


async def read_url(stream: asyncio.StreamReader, marker: bytes) -> str:
    """Read lines until one containing ``marker`` and a URL (bounded by a timeout)."""
    async with asyncio.timeout(20):
        while True:
            line = await stream.readline()
            assert line, "process ended before printing its address"
            if marker in line and (match := _URL.search(line)):
                return match.group(1).decode()


@dataclass
class GatewayProcess:
    process: asyncio.subprocess.Process
    url: str

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)


@asynccontextmanager
async def gateway_process(
    config: dict[str, object], tmp_path: Path, env: dict[str, str] | None = None
) -> AsyncIterator[GatewayProcess]:
    """``claude-proxy serve`` with this configuration on a free port; stopped afterwards."""
    path = tmp_path / f"gateway-{os.urandom(4).hex()}.yaml"
    path.write_text(yaml.safe_dump(config))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "claude_proxy", "serve", "--config", str(path), "--port", "0",
        env={**os.environ, **(env or {})}, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    drain: asyncio.Task[None] | None = None
    try:
        url = await read_url(process.stderr, b"listening on")
        # Keep reading its log, or a full pipe would block the gateway.
        drain = asyncio.create_task(_discard(process.stderr))
        yield GatewayProcess(process, url)
    finally:
        if drain is not None:
            drain.cancel()
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass
