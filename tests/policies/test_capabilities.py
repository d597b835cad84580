"""The gateway's model table agrees with the simulator's catalogue, model by model."""

from __future__ import annotations

from claude_proxy.policies import CAPABILITIES, EFFORTS, capabilities
from claude_proxy.sim.models import CATALOGUE
from claude_proxy.sim.models import EFFORTS as SIM_EFFORTS


def test_the_table_and_the_simulator_cannot_drift_apart() -> None:
    assert EFFORTS == SIM_EFFORTS
    assert set(CAPABILITIES) == set(CATALOGUE)  # ids and aliases alike
    for name, spec in CATALOGUE.items():
        caps = CAPABILITIES[name]
        assert caps.max_output == spec.max_output, name
        assert caps.sampling == spec.accepts_sampling, name
        assert caps.sampling_exclusive == spec.sampling_exclusive, name
        assert caps.efforts == spec.efforts, name
        expected = (
            "none"
            if not spec.extended_thinking
            else "adaptive"
            if spec.adaptive_thinking_only
            else "budget"
        )
        assert caps.thinking == expected, name


def test_lookup_by_alias_and_dated_snapshot() -> None:
    assert capabilities("claude-sonnet-4-5") is capabilities("claude-sonnet-4-5-20250929")
    snapshot = capabilities("claude-opus-4-6-20260205")
    assert snapshot is not None and snapshot is capabilities("claude-opus-4-6")
    assert capabilities("claude-imaginary-9") is None
    assert capabilities("claude-opus-4-6-2026") is None  # not a date
    assert capabilities(None) is None
