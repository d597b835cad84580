"""What a bench run measures: its rows (one case each), how many runs a row, which model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CACHE_HEADER", "DEFAULT_MODEL", "DESIGN_NOTE", "Case", "Plan"]

DEFAULT_MODEL = "claude-sonnet-4-6"

# The gateway's automatic prompt caching is on unless a request says otherwise.
CACHE_HEADER = "x-proxy-prompt-cache"

# The design note's measurements: max_tokens -> (latency ms, gateway memory MB).
DESIGN_NOTE: dict[int, tuple[int, int]] = {256: (420, 110), 512: (680, 125), 1024: (1200, 150)}

Series = Literal["max_tokens", "input"]
CacheMode = Literal["as is", "off", "on"]


@dataclass(frozen=True, slots=True)
class Case:
    """One row: a short prompt with a long answer (``max_tokens`` series), or a document
    of ``input_tokens`` estimated tokens with a question (``input`` series)."""

    series: Series
    max_tokens: int
    input_tokens: int | None = None  # the size asked for; None: the short prompt
    cache: CacheMode = "as is"  # "off": CACHE_HEADER off; "on" and "as is": no header

    @property
    def label(self) -> str:
        if self.series == "max_tokens":
            return f"max_tokens {self.max_tokens}"
        return f"input {self.input_tokens:,}, cache {self.cache}"


@dataclass(frozen=True, slots=True)
class Plan:
    model: str = DEFAULT_MODEL
    runs: int = 6
    max_tokens: tuple[int, ...] = (256, 512, 1024, 4096)
    input_tokens: tuple[int, ...] = (500, 2_000, 10_000, 50_000)
    # The input series asks for short answers: what grows there is the time to read.
    input_max_tokens: int = 256
    speed: float = 1.0  # the built-in simulator's latency factor (1: the design note's)

    @classmethod
    def quick(cls, model: str = DEFAULT_MODEL) -> Plan:
        """Tiny sizes and a fast simulator: a smoke run of a few seconds (the tests').

        The largest document (3,000 estimated tokens, about 2,450 as the simulator counts
        them) is over the simulator's 2,048-token minimum for caching on Sonnet 4.6, so
        its ``on`` row reads the prompt cache; the smaller ones are under any model's."""
        return cls(
            model=model,
            runs=3,
            max_tokens=(16, 128, 256, 512),
            input_tokens=(300, 1_000, 3_000),
            input_max_tokens=16,
            speed=0.15,
        )

    def cases(self) -> list[Case]:
        rows = [Case("max_tokens", n) for n in self.max_tokens]
        for size in self.input_tokens:
            rows.append(Case("input", self.input_max_tokens, size, "off"))
            rows.append(Case("input", self.input_max_tokens, size, "on"))
        return rows

    @property
    def requests(self) -> int:
        return len(self.cases()) * self.runs

    @property
    def input_budget(self) -> int:
        """Estimated input tokens of all the rows' requests (what a real API bills)."""
        short = 60  # the max_tokens series' prompt
        return sum(case.input_tokens or short for case in self.cases()) * self.runs
