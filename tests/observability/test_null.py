"""Metrics switched off are a complete null object: every recording call, nothing recorded."""

from __future__ import annotations

import inspect

from claude_proxy.observability import Metrics, NullMetrics

# Answering calls, not recording ones: they stay Metrics' own (and show empty families).
EXPORTS = {"render", "snapshot"}


def public_methods(cls: type) -> set[str]:
    return {
        name for name, _ in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")
    }


def test_every_recording_method_is_overridden() -> None:
    missing = {
        name
        for name in public_methods(Metrics) - EXPORTS
        if getattr(NullMetrics, name) is getattr(Metrics, name)
    }
    assert not missing, f"NullMetrics would record through: {sorted(missing)}"


def test_null_metrics_record_nothing() -> None:
    metrics = NullMetrics(["acme"])
    metrics.request_started()
    metrics.request_finished(tenant="acme", model="m", stream=False, status=200, duration=0.1)
    metrics.continuation()
    metrics.redaction("EMAIL", "mask")
    metrics.set_window(7)
    metrics.set_breaker("primary", "open")
    metrics.set_tenant_load("acme", 1, 2)
    body, _ = metrics.render()
    samples = [line for line in body.decode().splitlines() if line and not line.startswith("#")]
    assert all(line.endswith(" 0.0") or "_created" in line for line in samples), samples
