"""The one error a state backend raises when its store cannot be reached."""

from __future__ import annotations

from claude_proxy.errors import GatewayError

__all__ = ["StateUnavailable"]


class StateUnavailable(GatewayError):
    """The shared store (Redis, ...) failed; the gateway cannot decide safely, so it refuses.

    Limits fail closed: admitting without the shared state would let every replica
    spend the whole budget on its own.
    """

    status = 503
    error_type = "api_error"
