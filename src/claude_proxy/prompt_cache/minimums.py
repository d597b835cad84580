"""The shortest prefix each model caches (API reference section 5), by model name.

A breakpoint on a shorter prefix is silently ignored by the API (nothing written, nothing
charged), so the table only decides whether a request is worth changing at all. Names
match by family: the longest entry that is the name or a prefix of it followed by ``-``
(``claude-sonnet-4-5-20250929`` is ``claude-sonnet-4-5``; ``claude-opus-4-0`` is
``claude-opus-4``). Where sources disagree (Sonnet 4.6: 1024 or 2048) the larger is
taken. A model the table does not know gets ``UNKNOWN_MODEL_MIN_TOKENS``, the largest
minimum of any known model: the gateway never marks a prefix too short for it, and
loses at most the savings on prefixes under 4,096 tokens until ``min_tokens`` names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from types import MappingProxyType

__all__ = ["MIN_CACHEABLE_TOKENS", "UNKNOWN_MODEL_MIN_TOKENS", "min_cacheable_tokens"]

UNKNOWN_MODEL_MIN_TOKENS = 4096

MIN_CACHEABLE_TOKENS: Mapping[str, int] = MappingProxyType(
    {
        "claude-3-opus": 1024,
        "claude-3-5-sonnet": 1024,
        "claude-3-7-sonnet": 1024,
        "claude-3-haiku": 2048,
        "claude-3-5-haiku": 2048,
        "claude-sonnet-4": 1024,
        "claude-sonnet-4-5": 1024,
        "claude-sonnet-4-6": 2048,
        "claude-opus-4": 1024,
        "claude-opus-4-1": 1024,
        "claude-opus-4-5": 4096,
        "claude-opus-4-6": 4096,
        "claude-opus-4-7": 2048,
        "claude-opus-4-8": 1024,
        "claude-haiku-4-5": 4096,
        "claude-sonnet-5": 1024,
        "claude-opus-5": 512,
    }
)


def min_cacheable_tokens(model: str | None, overrides: Mapping[str, int] | None = None) -> int:
    """The shortest prefix worth a breakpoint for ``model``: the first of ``overrides``
    (globs) that matches, else the table, else ``UNKNOWN_MODEL_MIN_TOKENS``."""
    if model is None:
        return UNKNOWN_MODEL_MIN_TOKENS
    for glob, tokens in (overrides or {}).items():
        if fnmatchcase(model, glob):
            return tokens
    best = ""
    for family in MIN_CACHEABLE_TOKENS:
        if len(family) > len(best) and (model == family or model.startswith(family + "-")):
            best = family
    return MIN_CACHEABLE_TOKENS[best] if best else UNKNOWN_MODEL_MIN_TOKENS
