"""The ``continuations`` stage: how far past ``max_tokens`` the gateway continues an answer.

A request with ``x-proxy-max-continuations: N`` (or, without the header, its tenant's
``max_continuations``) that stops at ``max_tokens`` is continued by the gateway up to N
times (``streaming.relay``), into one message. In the chain only when
``continuations.max_per_request`` is above 0.
"""

from __future__ import annotations

from claude_proxy.errors import InvalidRequest
from claude_proxy.pipeline.call import Call, Route

__all__ = ["MAX_CONTINUATIONS_HEADER", "Continuations"]

MAX_CONTINUATIONS_HEADER = "x-proxy-max-continuations"


class Continuations:
    name = "continuations"
    routes = frozenset({Route.MESSAGES})

    def __init__(self, limit: int) -> None:
        self._limit = limit

    async def on_request(self, call: Call) -> None:
        raw = call.headers.get(MAX_CONTINUATIONS_HEADER)
        if raw is None:
            # The tenant's default, within the gateway's limit.
            if call.tenant is not None and call.tenant.settings.max_continuations:
                call.max_continuations = min(call.tenant.settings.max_continuations, self._limit)
            return
        try:
            wanted = int(raw)
        except ValueError:
            wanted = -1
        if not 0 <= wanted <= self._limit:
            raise InvalidRequest(
                f"{MAX_CONTINUATIONS_HEADER}: must be an integer from 0 to {self._limit} "
                "(continuations.max_per_request)"
            )
        call.max_continuations = wanted
