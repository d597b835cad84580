"""SimSettings: every knob of the simulator in one frozen, typed object."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["FAULT_KINDS", "FaultRates", "LatencyModel", "SimSettings"]

# Order matters: one uniform draw per request walks these cumulative probabilities.
FAULT_KINDS: tuple[str, ...] = ("429", "529", "500", "reset", "cut", "stream-error", "slow")

# How a single `--fault-rate` is split between the kinds: the retryable statuses dominate,
# as they do against the real API.
_MIX_WEIGHTS: dict[str, float] = {
    "429": 0.25,
    "529": 0.25,
    "500": 0.10,
    "reset": 0.10,
    "cut": 0.15,
    "stream-error": 0.10,
    "slow": 0.05,
}


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Probability per request of each fault kind; their sum must stay <= 1."""

    p_429: float = 0.0
    p_529: float = 0.0
    p_500: float = 0.0
    p_reset: float = 0.0
    p_cut: float = 0.0
    p_stream_error: float = 0.0
    p_slow: float = 0.0

    def __post_init__(self) -> None:
        values = self.as_dict().values()
        if any(p < 0 or p > 1 for p in values) or sum(values) > 1.0 + 1e-9:
            raise ValueError("fault probabilities must be in [0, 1] and sum to at most 1")

    @classmethod
    def mix(cls, rate: float) -> FaultRates:
        """Spread one overall fault rate over all kinds with fixed weights."""
        w = _MIX_WEIGHTS
        return cls(
            p_429=rate * w["429"],
            p_529=rate * w["529"],
            p_500=rate * w["500"],
            p_reset=rate * w["reset"],
            p_cut=rate * w["cut"],
            p_stream_error=rate * w["stream-error"],
            p_slow=rate * w["slow"],
        )

    def as_dict(self) -> dict[str, float]:
        return {
            "429": self.p_429,
            "529": self.p_529,
            "500": self.p_500,
            "reset": self.p_reset,
            "cut": self.p_cut,
            "stream-error": self.p_stream_error,
            "slow": self.p_slow,
        }


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """Seconds of simulated work, before the `speed` factor is applied.

    Defaults reproduce the design note's measurements: long answers with max_tokens
    256 / 512 / 1024 take about 0.42 / 0.68 / 1.2 s in total.
    """

    base_ttft: float = 0.16
    per_input_token: float = 0.00002
    per_cached_token: float = 0.000002
    per_output_token: float = 0.001


@dataclass(frozen=True, slots=True)
class SimSettings:
    """Configuration of one simulator app; build it once and pass it to create_sim_app."""

    api_key: str | None = None  # None: any non-empty key is accepted
    speed: float = 1.0  # latency multiplier; 0 disables every sleep
    seed: int = 0  # seeds the fault RNG (answers are seeded by the conversation)
    faults: FaultRates = field(default_factory=FaultRates)
    slow_first_byte: float = 2.0  # seconds before headers on a "slow" fault
    retry_after: float = 1.0  # retry-after seconds sent with an injected 429
    max_cut_events: int = 12  # random cut / stream-error faults happen after 1..this events
    latency: LatencyModel = field(default_factory=LatencyModel)
    # Natural answer length in tokens; the answer ends on the word that reaches it.
    min_answer_tokens: int = 40
    max_answer_tokens: int = 300
    continue_overlap_words: int = 0  # >0: a continue turn first repeats that many words
    cache_ttl_5m: float = 300.0
    cache_ttl_1h: float = 3600.0
    # A request whose body contains this text always gets a 500 (a part of a document
    # that fails on every try, say); None: off.
    fail_marker: str | None = None
    clock: Callable[[], float] = time.monotonic  # injectable so tests move time without sleeping
    journal: int = 0  # keep the last N request bodies (app[JOURNAL], /sim/journal); 0: off
    echo: bool = False  # answer with the text of the last user turn instead of prose

    def __post_init__(self) -> None:
        if self.speed < 0:
            raise ValueError("speed must be >= 0")
        if not 1 <= self.min_answer_tokens <= self.max_answer_tokens:
            raise ValueError("need 1 <= min_answer_tokens <= max_answer_tokens")
        if self.continue_overlap_words < 0:
            raise ValueError("continue_overlap_words must be >= 0")
        if self.journal < 0:
            raise ValueError("journal must be >= 0")
