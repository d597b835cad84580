"""Client connections: limits, deadlines, and malformed requests answered in the API's shape.

Without limits, one unauthenticated client could hold every descriptor of the process
with idle or half-sent connections, and the gateway then refused everyone, health
probes included. Per process (``clients:`` in the settings):

- a new connection must send a whole request head within ``header_timeout``, trickled
  bytes or not; a keep-alive one its next head within ``keepalive_timeout``;
- a request body must arrive within ``body_timeout`` plus 1 s per ``body_min_rate``
  bytes received, or its request is answered 408 ``timeout_error`` and the connection
  closes;
- at ``max_connections_per_address`` (one address, or IPv6 /64) or ``max_connections``,
  the connection in that scope that has waited longest for a request head is closed to
  make room; when all of them have a request in progress the newcomer is answered 503
  ``overloaded_error`` with ``retry-after`` and closed;
- what aiohttp's parser rejects is answered 400 ``invalid_request_error`` (431
  ``request_too_large`` for an oversized head) with a ``request-id``, and logged as one
  warning line, at most a few a second however many arrive.
"""

from claude_proxy.connections.guard import ClientGuard, RateLimitedLog, describe_limits
from claude_proxy.connections.protocol import ClientConnection, ClientRunner, parse_error_answer
from claude_proxy.connections.table import (
    ConnectionStats,
    ConnectionTable,
    Limits,
    address_key,
    auto_max_connections,
    resolve_limits,
)

__all__ = [
    "ClientConnection",
    "ClientGuard",
    "ClientRunner",
    "ConnectionStats",
    "ConnectionTable",
    "Limits",
    "RateLimitedLog",
    "address_key",
    "auto_max_connections",
    "describe_limits",
    "parse_error_answer",
    "resolve_limits",
]
