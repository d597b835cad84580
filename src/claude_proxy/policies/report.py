"""What the rules did to one request: values applied, parameters skipped, and the header."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from claude_proxy.policies.settings import Parameter

__all__ = ["Action", "Applied", "PolicyReport", "Skipped"]

Action = Literal["set", "default", "clamped", "fitted"]
"""``fitted``: a thinking budget moved so that it stays below ``max_tokens``, or a raise of
``max_tokens`` stopped where a request that does not stream can take it."""


@dataclass(frozen=True, slots=True)
class Applied:
    policy: str
    parameter: Parameter
    value: Any
    action: Action
    note: str | None = None  # "model limit", "context limit", "below max_tokens", ...

    def __str__(self) -> str:
        how = self.action if self.note is None else f"{self.action}, {self.note}"
        return f"{self.parameter}={_shown(self.value)} ({how})"


@dataclass(frozen=True, slots=True)
class Skipped:
    """A parameter a rule wanted but the request cannot carry: it was not sent."""

    policy: str
    parameter: Parameter
    reason: str  # a word from a fixed vocabulary (see ``policies.apply``)

    def __str__(self) -> str:
        return f"{self.parameter} skipped ({self.reason})"


@dataclass(slots=True)
class PolicyReport:
    """The rules a request matched, in order, and what each did."""

    matched: list[str]
    applied: list[Applied] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def header(self) -> str:
        """``x-proxy-policy``: per matched rule, its name then what it did, rules apart
        by commas (``extraction; temperature=0 (set), long-chat; effort=low (default)``)."""
        groups = []
        for name in self.matched:
            parts = [name]
            parts.extend(str(a) for a in self.applied if a.policy == name)
            parts.extend(str(s) for s in self.skipped if s.policy == name)
            groups.append("; ".join(parts))
        return ", ".join(groups)


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
