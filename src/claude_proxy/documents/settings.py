"""The ``documents:`` section of the settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DocumentSettings"]


class DocumentSettings(BaseModel):
    """The ``documents:`` section: how ``POST /v1/documents`` runs its calls."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_parallel: int = Field(default=16, ge=1, le=1024)
    """Map calls in flight at once for one document (each still waits for its window)."""
    context_tokens: int = Field(default=150_000, ge=1000)
    """What one call may hold (prompt + max_tokens) before partial results are combined in
    groups; below the models' 200k context, since the estimate is not the tokenizer."""
    map_retries: int = Field(default=1, ge=0, le=5)
    """Times a failed chunk is tried again (after the call's own retries)."""
    wait_seconds: float = Field(default=300.0, ge=0)
    """How long a chunk refused by the tenant's rate limits (429) waits and tries again."""
    max_chunks: int = Field(default=2000, ge=1)
    """At most this many chunks per document (each is a call): raise chunk_tokens instead."""
