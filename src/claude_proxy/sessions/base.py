"""The session-store contract: what the gateway asks of a backend that keeps conversations.

A client sends ``x-session-id`` with only its new turn; the gateway prepends the stored
conversation, forwards the request, and on success appends the user turn(s) and the
assistant's answer. Several replicas (and worker processes) may serve one session, so
every write carries the version it was based on, and a request holds the session's lock
while it runs so that two turns of one conversation are not answered at once.

Exceptions::

    Exception
    ├── SessionConflict      expected_version did not match: someone else wrote first
    └── SessionBusy          the session's lock was not acquired within the wait
    StateUnavailable         503: the store failed (from ``claude_proxy.state``)

The first two are plain exceptions, not ``GatewayError``: what a client is told (retry,
409, wait) is the session stage's decision, not the store's.
"""

from __future__ import annotations

import builtins
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Session",
    "SessionBusy",
    "SessionConflict",
    "SessionInfo",
    "SessionSettings",
    "SessionStore",
]


@dataclass(frozen=True, slots=True)
class Session:
    """One stored conversation. ``messages`` is the caller's own copy: mutate it freely."""

    tenant: str
    session_id: str
    system: Any | None
    """The stored top-level ``system`` (a string or a list of blocks), or None."""
    messages: list[dict[str, Any]]
    """The conversation in order, as Messages API message objects."""
    version: int
    """Bumps by one on every successful append or replace; 0 means "does not exist"."""
    created: float
    updated: float


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session as listed: ``turns`` counts its stored messages."""

    session_id: str
    turns: int
    created: float
    updated: float


class SessionConflict(Exception):
    """The session is not at ``expected_version``: another request wrote it first."""

    def __init__(self, session_id: str, expected: int, actual: int | None = None) -> None:
        found = "" if actual is None else f", found {actual}"
        super().__init__(f"session {session_id!r} is not at version {expected}{found}")
        self.session_id = session_id
        self.expected = expected
        self.actual = actual


class SessionBusy(Exception):
    """Another request holds the session's lock, and it was not released within the wait."""

    def __init__(self, session_id: str, waited: float) -> None:
        super().__init__(f"session {session_id!r} is busy (waited {waited:g} s for its lock)")
        self.session_id = session_id
        self.waited = waited


class SessionSettings(BaseModel):
    """Where sessions are kept and how they are cached, kept and locked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "sqlite:///./claude-proxy-sessions.db"
    """``sqlite:///relative.db`` or ``sqlite:////absolute.db``, ``postgresql://…``,
    ``redis://…`` or ``memory://``."""
    cache_size: int = Field(default=10_000, ge=0)
    """Sessions kept decoded in this process in front of a shared store (0: no cache)."""
    cache_ttl_seconds: float = Field(default=300.0, ge=0)
    """A cached session is read again from the store after this long."""
    cache_verify: bool = True
    """Before a cached session is used, ask the store its version (one small read) and read
    it again if another replica or worker wrote it since. Off: a copy may be up to
    ``cache_ttl_seconds`` behind such writes; only safe with one gateway process."""
    ttl_seconds: float | None = Field(default=None, gt=0)
    """Retention: a session is forgotten this long after its last append (None: kept)."""
    key_prefix: str = "claude-proxy:sessions:"
    """Redis backend: every key starts with this."""
    on_busy: Literal["wait", "reject"] = "wait"
    """A request for a session whose lock is held waits for it, or is refused at once."""
    lock_wait_seconds: float = Field(default=30.0, ge=0)
    """How long ``on_busy: wait`` waits for the lock."""
    context_tokens: int | None = Field(default=None, gt=0)
    """The context window a session's request must fit in (None: the model's own)."""
    overflow: Literal["drop", "summarize"] = "drop"
    """When the history and the new turn do not fit: leave the oldest whole turns out
    (they stay stored), or have the model summarise them into a turn stored in their place."""
    summary_tokens: int = Field(default=1024, ge=16)
    """``overflow: summarize``: the ``max_tokens`` of the summary."""
    overflow_step: float = Field(default=0.25, ge=0, lt=1)
    """Old turns are left out (or summarised) in steps of this share of the context
    budget, at boundaries fixed by the stored history, so the history sent starts at the
    same turn for several turns and the API's prompt cache can read it (0: leave out
    just enough each turn, which moves the start, and the cache misses, every turn)."""


class SessionStore(Protocol):
    """Conversations by tenant and session id; every key and row includes the tenant.

    A store that cannot be reached raises ``StateUnavailable`` from every method but
    ``healthy`` and ``close``; its message never includes the URL.
    """

    async def load(self, tenant: str, session_id: str) -> Session | None:
        """The session, or None when it never existed, was deleted or expired."""

    async def version(self, tenant: str, session_id: str) -> int:
        """The live session's version, 0 when there is none: one small read, which a
        cache in front asks before it serves a copy (another replica may have written)."""

    async def append(
        self,
        tenant: str,
        session_id: str,
        messages: builtins.list[dict[str, Any]],
        *,
        expected_version: int,
        system: Any | None = None,
        ttl_seconds: float | None = None,
    ) -> int:
        """Atomically: check the version (0: the session must not exist yet), add
        ``messages`` at the end, set ``system`` when given (not None), bump the version
        and refresh the expiry; return the new version.

        ``ttl_seconds`` None keeps the session for the store's ``ttl_seconds`` setting
        (itself None: for good). Raises ``SessionConflict`` on a version mismatch, and
        nothing is written then.
        """

    async def replace(
        self,
        tenant: str,
        session_id: str,
        messages: builtins.list[dict[str, Any]],
        *,
        expected_version: int,
    ) -> int:
        """Atomically replace the whole message list (a summary took the place of old
        turns); ``system`` and the expiry are kept. Same version rule as ``append``."""

    async def delete(self, tenant: str, session_id: str) -> bool:
        """Forget the session; False when there was none."""

    async def list(
        self, tenant: str, *, limit: int = 100, after: str | None = None
    ) -> builtins.list[SessionInfo]:
        """The tenant's live sessions ordered by id (code point order), at most ``limit``;
        ``after`` is the last id of the previous page."""

    def lock(
        self, tenant: str, session_id: str, *, wait: float, lease: float = 30.0
    ) -> AbstractAsyncContextManager[None]:
        """Hold the session exclusively, across processes and replicas, while inside.

        The lease is renewed in the background while held (a long stream keeps it) and
        runs out ``lease`` seconds after a holder that died (SIGKILL) last renewed it.
        Raises ``SessionBusy`` when not acquired within ``wait`` seconds (0: try once).
        """

    async def healthy(self) -> bool:
        """Whether the store answers (cached briefly); never raises."""

    async def close(self) -> None:
        """Release connections and background tasks; bounded in time, never raises."""
