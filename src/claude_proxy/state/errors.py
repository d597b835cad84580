"""The one error a state backend raises when its store cannot be reached."""

from __future__ import annotations

from collections.abc import Mapping

from claude_proxy.errors import GatewayError

__all__ = ["RETRY_AFTER_SECONDS", "StateUnavailable"]

# A restarted Redis or a failover is usually back within seconds; clients (the SDK
# honours retry-after) should come back soon, not hammer the gateway meanwhile.
RETRY_AFTER_SECONDS = 1


class StateUnavailable(GatewayError):
    """The shared store (Redis, ...) failed; the gateway cannot decide safely, so it refuses.

    Limits fail closed by default (``admission.on_state_failure: closed``): admitting
    without the shared state would let every replica spend the whole budget on its own.
    Answered as 503 ``api_error`` with ``retry-after``: it is the gateway that failed, not
    the API that is overloaded.
    """

    status = 503
    error_type = "api_error"

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(
            message, headers={"retry-after": str(RETRY_AFTER_SECONDS), **(headers or {})}
        )
