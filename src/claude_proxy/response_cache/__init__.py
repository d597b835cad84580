"""The exact response cache: whole answers to identical requests, in memory or Redis.

Only the contract, the settings and the registry are imported here; redis-py is
imported by the Redis backend alone, when a redis URL is configured.
"""

from claude_proxy.response_cache.base import Entry, ResponseCache
from claude_proxy.response_cache.registry import open_response_cache
from claude_proxy.response_cache.settings import (
    ResponseCachePolicy,
    ResponseCacheSettings,
    merged,
)

__all__ = [
    "Entry",
    "ResponseCache",
    "ResponseCachePolicy",
    "ResponseCacheSettings",
    "merged",
    "open_response_cache",
]
