"""Fault injection: choosing a fault per request (seeded or forced) and its error replies."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from aiohttp import web

from claude_proxy.errors import InvalidRequest
from claude_proxy.responses import error_response
from claude_proxy.sim.settings import FAULT_KINDS, SimSettings

__all__ = ["Fault", "draw_fault", "error_fault_response", "parse_forced", "ratelimit_headers"]

_STATUS = {
    "429": (
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit (simulated).",
    ),
    "529": (529, "overloaded_error", "Overloaded"),
    "500": (500, "api_error", "Internal server error"),
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault to inject. ``after`` = events before a cut/error, or seconds for 'slow'."""

    kind: str  # one of FAULT_KINDS
    after: float = 0.0

    @property
    def is_status(self) -> bool:
        return self.kind in _STATUS


def parse_forced(value: str) -> Fault:
    """Parse ``x-sim-fault``: 429, 529, 500, reset, cut:<k>, stream-error:<k>, slow:<s>."""
    kind, _, arg = value.strip().partition(":")
    if kind not in FAULT_KINDS:
        raise InvalidRequest(f"x-sim-fault: unknown fault kind {kind!r}")
    if kind in ("cut", "stream-error"):
        try:
            after = int(arg) if arg else 1
        except ValueError:
            raise InvalidRequest("x-sim-fault: event count must be an integer") from None
        return Fault(kind, float(max(1, after)))
    if kind == "slow":
        try:
            return Fault(kind, float(arg)) if arg else Fault(kind, -1.0)
        except ValueError:
            raise InvalidRequest("x-sim-fault: slow needs seconds, e.g. slow:0.5") from None
    return Fault(kind)


def draw_fault(rng: random.Random, settings: SimSettings) -> Fault | None:
    """One uniform draw against the cumulative fault probabilities (reproducible per seed)."""
    roll = rng.random()
    cumulative = 0.0
    for kind, p in settings.faults.as_dict().items():
        cumulative += p
        if roll < cumulative:
            if kind in ("cut", "stream-error"):
                return Fault(kind, float(rng.randint(1, settings.max_cut_events)))
            if kind == "slow":
                return Fault(kind, settings.slow_first_byte)
            return Fault(kind)
    return None


def ratelimit_headers(retry_after: float) -> dict[str, str]:
    reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + retry_after))
    headers = {"retry-after": f"{retry_after:g}"}
    for family, limit in (
        ("requests", "50"),
        ("tokens", "80000"),
        ("input-tokens", "40000"),
        ("output-tokens", "16000"),
    ):
        headers[f"anthropic-ratelimit-{family}-limit"] = limit
        headers[f"anthropic-ratelimit-{family}-remaining"] = "0"
        headers[f"anthropic-ratelimit-{family}-reset"] = reset
    return headers


def error_fault_response(
    fault: Fault, request_id: str, retry_after: float | None, should_retry: str | None
) -> web.Response:
    """The 429 / 529 / 500 reply for a status fault."""
    status, error_type, message = _STATUS[fault.kind]
    headers: dict[str, str] = {}
    if status == 429:
        headers.update(ratelimit_headers(retry_after if retry_after is not None else 1.0))
    elif retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    if should_retry is not None:
        headers["x-should-retry"] = should_retry
    return error_response(status, error_type, message, request_id, headers)
