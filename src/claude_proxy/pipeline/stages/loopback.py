"""The ``loopback`` stage: an open gateway (no tenants) serves only its own host's clients.

In the chain only when there is no way to authenticate callers and the gateway
listens beyond loopback (and ``allow_remote_without_auth`` is off).
"""

from __future__ import annotations

import ipaddress

from claude_proxy.errors import PermissionDenied
from claude_proxy.pipeline.call import Call
from claude_proxy.pipeline.stage import ALL_ROUTES

__all__ = ["LoopbackOnly"]


class LoopbackOnly:
    name = "loopback"
    routes = ALL_ROUTES

    async def on_request(self, call: Call) -> None:
        if not is_loopback(call.peer):
            raise PermissionDenied(
                "this gateway has no tenants configured and only serves clients on its own "
                "host; configure tenants (or allow_remote_without_auth) to accept remote clients"
            )


def is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
