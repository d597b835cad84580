"""A Redis server of the test's own, which the test may kill, restart and flush.

The shared Redis on 6379 must never be killed, so tests of outages start their own
``redis-server`` on a free port with a directory of their own: without persistence
(``--save "" --appendonly no``, so a restart comes back empty, as after a failover to an
empty replica) or with an append-only file fsynced on every write (a restart comes back
with every key).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import RedisError

START_SECONDS = 5.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process at a fixed port, restartable on that same port."""

    def __init__(self, directory: Path, *, persistent: bool) -> None:
        self.port = _free_port()
        self.directory = directory
        self.persistent = persistent
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (again) and wait until it answers a PING."""
        assert not self.running, "already running"
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persistent
            else ["--appendonly", "no"]
        )
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", *persistence, "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                with self.client() as client:
                    client.ping()
                return
            except (RedisError, OSError):
                if time.monotonic() > deadline or self._process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on {self.port}") from None
                time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL: no shutdown save, connections reset, as a crashed host."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers, as a stalled or partitioned host."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        self.kill()
        self.start()

    def flushdb(self) -> None:
        with self.client() as client:
            client.flushdb()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=1.0, decode_responses=True)


StartRedis = Callable[..., RedisServer]


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator[StartRedis]:
    """``start_redis(persistent=False)``: a running server of this test; killed afterwards."""
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    servers: list[RedisServer] = []

    def start(*, persistent: bool = False) -> RedisServer:
        directory = tmp_path / f"redis-{len(servers)}"
        directory.mkdir()
        server = RedisServer(directory, persistent=persistent)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.kill()
