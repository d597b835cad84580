"""claude_proxy.sim: a faithful Anthropic Messages API simulator served over real HTTP."""

from __future__ import annotations

from claude_proxy.sim.app import create_sim_app
from claude_proxy.sim.cli import simulate
from claude_proxy.sim.journal import JOURNAL, Journal, JournalEntry
from claude_proxy.sim.settings import FaultRates, LatencyModel, SimSettings

__all__ = [
    "JOURNAL",
    "FaultRates",
    "Journal",
    "JournalEntry",
    "LatencyModel",
    "SimSettings",
    "create_sim_app",
    "simulate",
]
