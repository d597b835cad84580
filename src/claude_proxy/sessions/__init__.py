"""Conversation sessions: the stored turns a client continues with only ``x-session-id``.

Only the contract is imported here; each backend (and its driver: the stdlib's sqlite3 on
a thread of its own, asyncpg, redis-py) is imported by ``open_store`` when its URL is
configured.
"""

from claude_proxy.sessions.base import (
    Session,
    SessionBusy,
    SessionConflict,
    SessionInfo,
    SessionSettings,
    SessionStore,
)
from claude_proxy.sessions.cache import CachedStore
from claude_proxy.sessions.registry import BACKENDS, open_store

__all__ = [
    "BACKENDS",
    "CachedStore",
    "Session",
    "SessionBusy",
    "SessionConflict",
    "SessionInfo",
    "SessionSettings",
    "SessionStore",
    "open_store",
]
