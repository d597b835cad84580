"""The Call: everything the pipeline stages know about one client request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDictProxy

__all__ = ["Call"]


@dataclass(slots=True)
class Call:
    """One client request as it travels through the stages.

    ``raw_body`` is forwarded byte for byte unless a stage changes ``body``;
    that keeps unknown fields untouched and spares a JSON encode on the hot path.
    """

    request_id: str
    path: str
    headers: CIMultiDictProxy[str]
    raw_body: bytes = b""
    body: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    started_at: float = 0.0
    tenant: str = ""
    # The answer's usage as the API reports it, once known (JSON body or stream events).
    usage: dict[str, Any] | None = None
