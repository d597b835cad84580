"""Shared-state plumbing reused by every backend that keeps state outside the process."""

from claude_proxy.state.errors import StateUnavailable
from claude_proxy.state.redis import open_redis, translate_redis_errors

__all__ = ["StateUnavailable", "open_redis", "translate_redis_errors"]
