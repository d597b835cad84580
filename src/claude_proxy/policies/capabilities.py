"""What each model accepts of the parameters a policy sets: the gateway's own table.

From the API reference (``anthropic-api.md`` sections 0, 1 and 8). The simulator keeps
its own catalogue (``sim/models.py``), which the gateway never imports; a test compares
the two so that they cannot drift apart.

A model missing from the table is unknown, and a policy treats it conservatively
(``policies.apply``): it only lowers values the client sent, never adds a parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = [
    "CAPABILITIES",
    "EFFORTS",
    "OLD_VERSION",
    "ModelCaps",
    "capabilities",
]

# output_config.effort levels, lowest first.
EFFORTS = ("low", "medium", "high", "xhigh", "max")
# The one anthropic-version on which temperature and top_p are accepted at all.
OLD_VERSION = "2023-06-01"

Thinking = Literal["none", "budget", "adaptive"]


@dataclass(frozen=True, slots=True)
class ModelCaps:
    """One model's limits and the parameters it takes."""

    max_output: int
    # temperature / top_p accepted (on anthropic-version 2023-06-01 only).
    sampling: bool = True
    # Refuses temperature and top_p in one request (Claude 4 models that take sampling).
    sampling_exclusive: bool = False
    # "budget": thinking {type: enabled, budget_tokens}; "adaptive": adaptive only.
    thinking: Thinking = "budget"
    efforts: tuple[str, ...] = ()
    # The anthropic-beta value effort needs on this model (Opus 4.5 had it as a beta).
    effort_beta: str | None = None


_K = 1000
_EFFORT_BETA = "effort-2025-11-24"
_OLD = ModelCaps(8192, thinking="none")
_CLAUDE_4 = ModelCaps(64 * _K, sampling_exclusive=True)
_OPUS_4 = ModelCaps(32 * _K, sampling_exclusive=True)
_OPUS_4_5 = ModelCaps(
    64 * _K, sampling_exclusive=True, efforts=EFFORTS[:3], effort_beta=_EFFORT_BETA
)
_CLAUDE_4_6 = ModelCaps(128 * _K, sampling_exclusive=True, efforts=("low", "medium", "high", "max"))
# Claude Opus 4.7 and newer, and the Claude 5 family: no sampling, adaptive thinking only.
_NEWEST = ModelCaps(128 * _K, sampling=False, thinking="adaptive", efforts=EFFORTS)

_NEWEST_IDS = (
    "claude-opus-4-7",
    "claude-opus-4-8",
    "claude-opus-5",
    "claude-opus-5-5",
    "claude-sonnet-5",
    "claude-sonnet-5-5",
    "claude-haiku-5-5",
    "claude-fable-5",
    "claude-fable-5-1",
    "claude-fable-5-2",
    "claude-mythos-5",
    "claude-mythos-5-1",
    "claude-mythos-5-2",
    "claude-mythos-preview",
)

CAPABILITIES: Mapping[str, ModelCaps] = MappingProxyType(
    {
        "claude-3-5-sonnet-20240620": _OLD,
        "claude-3-5-sonnet-20241022": _OLD,
        "claude-3-5-haiku-20241022": _OLD,
        "claude-3-haiku-20240307": ModelCaps(4096, thinking="none"),
        "claude-3-7-sonnet-20250219": ModelCaps(64 * _K),
        "claude-sonnet-4-20250514": _CLAUDE_4,
        "claude-sonnet-4-0": _CLAUDE_4,
        "claude-opus-4-20250514": _OPUS_4,
        "claude-opus-4-0": _OPUS_4,
        "claude-opus-4-1-20250805": _OPUS_4,
        "claude-sonnet-4-5-20250929": _CLAUDE_4,
        "claude-sonnet-4-5": _CLAUDE_4,
        "claude-haiku-4-5-20251001": _CLAUDE_4,
        "claude-haiku-4-5": _CLAUDE_4,
        "claude-opus-4-5-20251101": _OPUS_4_5,
        "claude-opus-4-5": _OPUS_4_5,
        "claude-opus-4-6": _CLAUDE_4_6,
        "claude-sonnet-4-6": _CLAUDE_4_6,
        **dict.fromkeys(_NEWEST_IDS, _NEWEST),
    }
)

# A dated snapshot of an alias: claude-opus-4-6-20260205 is claude-opus-4-6.
_SNAPSHOT = re.compile(r"(.+)-\d{8}")


def capabilities(model: str | None) -> ModelCaps | None:
    """The model's capabilities by id, alias or dated snapshot; None when unknown."""
    if model is None:
        return None
    found = CAPABILITIES.get(model)
    if found is None and (dated := _SNAPSHOT.fullmatch(model)) is not None:
        found = CAPABILITIES.get(dated.group(1))
    return found
