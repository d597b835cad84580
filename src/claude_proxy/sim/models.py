"""The model catalogue (API reference section 8) and lookup by id or alias."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["CATALOGUE", "EFFORTS", "ModelSpec", "active_models", "lookup_model"]

# output_config.effort levels, lowest first.
EFFORTS = ("low", "medium", "high", "xhigh", "max")
_EFFORTS_4_5 = EFFORTS[:3]  # Opus 4.5 predates max and xhigh
_EFFORTS_4_6 = ("low", "medium", "high", "max")  # 4.6 predates xhigh


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What the simulator needs to know about one model."""

    id: str
    display_name: str
    created_at: str  # RFC 3339, as GET /v1/models shows it
    context_window: int
    max_output: int
    aliases: tuple[str, ...] = ()
    accepts_prefill: bool = True
    accepts_sampling: bool = True  # temperature / top_p / top_k on 2023-06-01
    adaptive_thinking_only: bool = False
    extended_thinking: bool = True  # thinking at all (Claude 3.7 and newer)
    # Claude 4 models that take sampling refuse temperature and top_p in one request.
    sampling_exclusive: bool = False
    efforts: tuple[str, ...] = ()  # output_config.effort levels (none: refused)
    min_cacheable_tokens: int = 1024
    retired: bool = False

    def to_api(self) -> dict[str, object]:
        """The object GET /v1/models returns for this model."""
        return {
            "type": "model",
            "id": self.id,
            "display_name": self.display_name,
            "created_at": self.created_at,
            "max_input_tokens": self.context_window,
            "max_tokens": self.max_output,
        }


_K = 1000
_M = 1_000_000


def _new(model_id: str, name: str, created: str, min_cache: int) -> ModelSpec:
    """Claude 4.7+ and 5 family: 1M context, no prefill, no sampling, adaptive thinking."""
    return ModelSpec(
        model_id,
        name,
        created,
        _M,
        128 * _K,
        accepts_prefill=False,
        accepts_sampling=False,
        adaptive_thinking_only=True,
        efforts=EFFORTS,
        min_cacheable_tokens=min_cache,
    )


_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "claude-3-5-sonnet-20240620",
        "Claude Sonnet 3.5",
        "2024-06-20T00:00:00Z",
        200 * _K,
        8192,
        extended_thinking=False,
        retired=True,
    ),
    ModelSpec(
        "claude-3-5-sonnet-20241022",
        "Claude Sonnet 3.5",
        "2024-10-22T00:00:00Z",
        200 * _K,
        8192,
        extended_thinking=False,
        retired=True,
    ),
    ModelSpec(
        "claude-3-5-haiku-20241022",
        "Claude Haiku 3.5",
        "2024-10-22T00:00:00Z",
        200 * _K,
        8192,
        min_cacheable_tokens=2048,
        extended_thinking=False,
        retired=True,
    ),
    ModelSpec(
        "claude-3-7-sonnet-20250219",
        "Claude Sonnet 3.7",
        "2025-02-19T00:00:00Z",
        200 * _K,
        64 * _K,
        retired=True,
    ),
    ModelSpec(
        "claude-3-haiku-20240307",
        "Claude Haiku 3",
        "2024-03-07T00:00:00Z",
        200 * _K,
        4096,
        min_cacheable_tokens=2048,
        extended_thinking=False,
        retired=True,
    ),
    ModelSpec(
        "claude-sonnet-4-20250514",
        "Claude Sonnet 4",
        "2025-05-14T00:00:00Z",
        200 * _K,
        64 * _K,
        aliases=("claude-sonnet-4-0",),
        sampling_exclusive=True,
        retired=True,
    ),
    ModelSpec(
        "claude-opus-4-20250514",
        "Claude Opus 4",
        "2025-05-14T00:00:00Z",
        200 * _K,
        32 * _K,
        aliases=("claude-opus-4-0",),
        sampling_exclusive=True,
        retired=True,
    ),
    ModelSpec(
        "claude-opus-4-1-20250805",
        "Claude Opus 4.1",
        "2025-08-05T00:00:00Z",
        200 * _K,
        32 * _K,
        sampling_exclusive=True,
        retired=True,
    ),
    ModelSpec(
        "claude-sonnet-4-5-20250929",
        "Claude Sonnet 4.5",
        "2025-09-29T00:00:00Z",
        200 * _K,
        64 * _K,
        aliases=("claude-sonnet-4-5",),
        sampling_exclusive=True,
    ),
    ModelSpec(
        "claude-haiku-4-5-20251001",
        "Claude Haiku 4.5",
        "2025-10-01T00:00:00Z",
        200 * _K,
        64 * _K,
        aliases=("claude-haiku-4-5",),
        min_cacheable_tokens=4096,
        sampling_exclusive=True,
    ),
    ModelSpec(
        "claude-opus-4-5-20251101",
        "Claude Opus 4.5",
        "2025-11-01T00:00:00Z",
        200 * _K,
        64 * _K,
        aliases=("claude-opus-4-5",),
        min_cacheable_tokens=4096,
        sampling_exclusive=True,
        efforts=_EFFORTS_4_5,
    ),
    ModelSpec(
        "claude-opus-4-6",
        "Claude Opus 4.6",
        "2026-02-05T00:00:00Z",
        _M,
        128 * _K,
        accepts_prefill=False,
        min_cacheable_tokens=4096,
        sampling_exclusive=True,
        efforts=_EFFORTS_4_6,
    ),
    # Sources disagree for Sonnet 4.6 (1024 vs 2048); the larger is the safe assumption.
    ModelSpec(
        "claude-sonnet-4-6",
        "Claude Sonnet 4.6",
        "2026-02-17T00:00:00Z",
        _M,
        128 * _K,
        accepts_prefill=False,
        min_cacheable_tokens=2048,
        sampling_exclusive=True,
        efforts=_EFFORTS_4_6,
    ),
    _new("claude-opus-4-7", "Claude Opus 4.7", "2026-04-16T00:00:00Z", 2048),
    _new("claude-opus-4-8", "Claude Opus 4.8", "2026-06-10T00:00:00Z", 1024),
    _new("claude-opus-5", "Claude Opus 5", "2026-08-04T00:00:00Z", 512),
    _new("claude-sonnet-5", "Claude Sonnet 5", "2026-08-04T00:00:00Z", 1024),
    _new("claude-fable-5", "Claude Fable 5", "2026-08-18T00:00:00Z", 1024),
    _new("claude-mythos-5", "Claude Mythos 5", "2026-08-18T00:00:00Z", 1024),
    _new("claude-mythos-preview", "Claude Mythos Preview", "2026-07-01T00:00:00Z", 1024),
    _new("claude-fable-5-1", "Claude Fable 5.1", "2026-09-15T00:00:00Z", 1024),
    _new("claude-mythos-5-1", "Claude Mythos 5.1", "2026-09-15T00:00:00Z", 1024),
    _new("claude-opus-5-5", "Claude Opus 5.5", "2026-10-21T00:00:00Z", 512),
    _new("claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-10-21T00:00:00Z", 1024),
    _new("claude-haiku-5-5", "Claude Haiku 5.5", "2026-10-21T00:00:00Z", 1024),
    _new("claude-fable-5-2", "Claude Fable 5.2", "2026-11-10T00:00:00Z", 1024),
    _new("claude-mythos-5-2", "Claude Mythos 5.2", "2026-11-10T00:00:00Z", 1024),
)


def _index(specs: tuple[ModelSpec, ...]) -> Mapping[str, ModelSpec]:
    table: dict[str, ModelSpec] = {}
    for spec in specs:
        table[spec.id] = spec
        for alias in spec.aliases:
            table[alias] = spec
    return MappingProxyType(table)


CATALOGUE: Mapping[str, ModelSpec] = _index(_SPECS)


def lookup_model(name: str) -> ModelSpec | None:
    """The model for an id or alias, retired ones included; None when unknown."""
    return CATALOGUE.get(name)


def active_models() -> list[ModelSpec]:
    """Models GET /v1/models lists: not retired, newest first (as the API sorts them)."""
    live = [spec for spec in _SPECS if not spec.retired]
    return sorted(live, key=lambda spec: spec.created_at, reverse=True)
