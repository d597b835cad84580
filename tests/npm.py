"""Node.js clients for the end-to-end tests (the Node SDK, the Claude Code CLI), installed
from ``tests/js/package-lock.json`` by npm the first time they are needed.

Without node and npm (a laptop) the tests that need them skip, saying why; under
``CI=true`` that is a failure, as a missing Redis is.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = ["JS", "node_modules"]

JS = Path(__file__).parent / "js"
_STAMP = ".installed-from-lock"


def _missing(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the real-client tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """``tests/js/node_modules``, installed (again) when the lock file changed."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        _missing("node and npm are not installed: no Node SDK or Claude Code tests")
    assert npm is not None
    modules = JS / "node_modules"
    wanted = hashlib.sha256((JS / "package-lock.json").read_bytes()).hexdigest()
    stamp = modules / _STAMP
    if not stamp.exists() or stamp.read_text() != wanted:
        try:
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=JS,
                check=True,
                timeout=600,
                capture_output=True,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            output = getattr(exc, "stderr", b"") or b""
            _missing(f"npm ci in {JS} failed: {output.decode(errors='replace')[-500:]}")
        stamp.write_text(wanted)
    return modules
