"""Everything a running simulator holds: settings, fault RNG, prompt cache, counters,
journal."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from claude_proxy.sim.batches import BatchStore
from claude_proxy.sim.cache import PromptCache
from claude_proxy.sim.files import FileStore
from claude_proxy.sim.journal import Journal
from claude_proxy.sim.settings import SimSettings
from claude_proxy.sim.stats import Stats

__all__ = ["STATE", "SimState"]


@dataclass(slots=True)
class SimState:
    settings: SimSettings
    rng: random.Random  # fault draws only; answers are seeded by the conversation
    cache: PromptCache
    stats: Stats
    # Requests seen per forced-fault key (x-sim-fault-times).
    forced_counts: Counter[str] = field(default_factory=Counter)
    files: FileStore = field(default_factory=FileStore)
    batches: BatchStore = field(default_factory=BatchStore)
    journal: Journal = field(default_factory=lambda: Journal(0))

    @classmethod
    def build(cls, settings: SimSettings) -> SimState:
        cache = PromptCache(settings.clock, settings.cache_ttl_5m, settings.cache_ttl_1h)
        rng = random.Random(settings.seed)
        return cls(settings, rng, cache, Stats(), journal=Journal(settings.journal))


STATE = web.AppKey("sim_state", SimState)
