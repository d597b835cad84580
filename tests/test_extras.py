"""The core install (no extras) runs: nothing it imports needs redis-py, the SDK or
matplotlib."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import claude_proxy.app, claude_proxy.cli, claude_proxy.demo, claude_proxy.runner
import claude_proxy.workers, claude_proxy.collector
missing = sorted(name for name in ("redis", "anthropic", "matplotlib") if name in sys.modules)
print(",".join(missing))
"""


def test_the_gateway_imports_no_optional_dependency() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "", f"imported at start-up: {result.stdout.strip()}"
