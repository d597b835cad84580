"""Shared-state plumbing reused by every backend that keeps state outside the process.

Only the error is imported here: redis-py is an extra, and ``claude_proxy.state.redis``
(connections, error translation) is imported by the Redis backends alone.
"""

from claude_proxy.state.errors import StateUnavailable

__all__ = ["StateUnavailable"]
