"""The `simulate` command: options reach SimSettings and the server is started."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner

from claude_proxy.sim import SimSettings, simulate
from claude_proxy.sim.state import STATE


def _run(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> tuple[str, dict[str, Any]]:
    captured: dict[str, Any] = {}

    def fake_run_app(app: web.Application, **kwargs: Any) -> None:
        captured["settings"] = app[STATE].settings
        captured.update(kwargs)
        kwargs["loop"].close()

    monkeypatch.setattr(web, "run_app", fake_run_app)
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 0, result.output
    return result.output, captured


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    output, captured = _run(monkeypatch, [])
    assert output.strip() == "claude-proxy simulator listening on http://127.0.0.1:8001"
    settings: SimSettings = captured["settings"]
    assert settings.api_key is None
    assert settings.speed == 1.0
    assert captured["port"] == 8001


def test_fault_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    _, captured = _run(
        monkeypatch,
        [
            "--port",
            "9100",
            "--speed",
            "0",
            "--seed",
            "3",
            "--p-429",
            "0.1",
            "--p-cut",
            "0.2",
            "--api-key",
            "k",
            "--slow-first-byte",
            "0.5",
        ],
    )
    settings: SimSettings = captured["settings"]
    assert settings.faults.p_429 == 0.1
    assert settings.faults.p_cut == 0.2
    assert (settings.seed, settings.speed, settings.api_key) == (3, 0.0, "k")
    assert settings.slow_first_byte == 0.5


def test_fault_rate_mix(monkeypatch: pytest.MonkeyPatch) -> None:
    _, captured = _run(monkeypatch, ["--fault-rate", "0.2"])
    rates = captured["settings"].faults.as_dict()
    assert sum(rates.values()) == pytest.approx(0.2)
    assert all(p > 0 for p in rates.values())


def test_rates_over_one_rejected() -> None:
    result = CliRunner().invoke(simulate, ["--p-429", "0.7", "--p-529", "0.7"])
    assert result.exit_code != 0


def test_port_zero_listens_on_a_free_port_and_prints_it(monkeypatch: pytest.MonkeyPatch) -> None:
    output, captured = _run(monkeypatch, ["--port", "0"])
    sock = captured["sock"]
    try:
        port = sock.getsockname()[1]
        assert port > 0
        assert output.strip() == f"claude-proxy simulator listening on http://127.0.0.1:{port}"
        assert captured["port"] is None  # served on that socket only
    finally:
        sock.close()
