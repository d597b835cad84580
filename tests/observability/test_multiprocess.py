"""Several worker processes write to one directory; /metrics adds them up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from claude_proxy.observability import mark_worker_dead

# A worker: records ``n`` finished requests, leaves ``open`` requests in flight, sets its
# breaker state, says "ready" and stays alive (its live gauges count) until stdin closes.
WORKER = """
import sys
from claude_proxy.observability import Metrics

n, open_, breaker = (int(arg) for arg in sys.argv[1:4])
m = Metrics(["acme"], multiprocess_dir=sys.argv[4])
for i in range(n):
    m.request_started()
    m.request_finished(tenant="acme", model="claude-opus-4-1", stream=False,
                       status=200 if i % 2 else 529, duration=0.5)
for _ in range(open_):
    m.request_started()
m.set_breaker("primary", breaker)
m.set_window(10 + breaker)
print("ready", flush=True)
sys.stdin.read()
"""

RENDER = """
import sys
from claude_proxy.observability import Metrics

body, _ = Metrics(multiprocess_dir=sys.argv[1]).render()
sys.stdout.write(body.decode())
"""

SNAPSHOT = """
import json, sys
from claude_proxy.observability import Metrics

print(json.dumps(Metrics(multiprocess_dir=sys.argv[1]).snapshot()))
"""


def _env(directory: Path) -> dict[str, str]:
    return {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}


def _start(directory: Path, n: int, open_: int, breaker: int) -> subprocess.Popen[str]:
    args = [sys.executable, "-c", WORKER, str(n), str(open_), str(breaker), str(directory)]
    proc = subprocess.Popen(
        args, env=_env(directory), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _run(script: str, directory: Path) -> str:
    return subprocess.run(
        [sys.executable, "-c", script, str(directory)],
        env=_env(directory),
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _scrape(directory: Path) -> dict[str, float]:
    out = _run(RENDER, directory)
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(out):
        for sample in family.samples:
            key = sample.name
            if "error_type" in sample.labels and sample.name.endswith("_total"):
                key += ":" + sample.labels["error_type"]
            totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def _stop(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0


def test_two_workers_are_aggregated(tmp_path: Path) -> None:
    first = _start(tmp_path, n=10, open_=2, breaker=0)
    second = _start(tmp_path, n=4, open_=3, breaker=2)
    try:
        totals = _scrape(tmp_path)
        assert totals["api_request_duration_seconds_count"] == 14
        assert totals["api_errors_total:overloaded"] == 7
        assert totals["api_requests_in_flight"] == 5  # livesum
        assert totals["api_circuit_breaker_state"] == 2  # livemax: the worst worker
        assert totals["api_upstream_window"] == 12  # livemax
        snapshot = json.loads(_run(SNAPSHOT, tmp_path))
        assert snapshot["requests"] == 14
        assert snapshot["in_flight"] == 5
        assert snapshot["errors_by_type"] == {"overloaded": 7}

        _stop(second)
        mark_worker_dead(tmp_path, second.pid)
        totals = _scrape(tmp_path)
        # Counters keep what the dead worker counted; its live gauges are gone.
        assert totals["api_request_duration_seconds_count"] == 14
        assert totals["api_requests_in_flight"] == 2
        assert totals["api_circuit_breaker_state"] == 0
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                _stop(proc)


def test_a_directory_other_than_the_environments_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", RENDER, str(other)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "is not" in result.stderr
