"""The ``authenticate`` stage: which tenant is calling, from its key alone.

Before the body is read, so that a caller without a valid key cannot make the
gateway read (up to ``max_body_bytes`` of) a body. With no tenants configured every
caller is the open tenant.
"""

from __future__ import annotations

from claude_proxy.pipeline.call import Call
from claude_proxy.pipeline.stage import API_ROUTES
from claude_proxy.tenancy import TenantDirectory

__all__ = ["Authenticate"]


class Authenticate:
    name = "authenticate"
    routes = API_ROUTES

    def __init__(self, tenants: TenantDirectory) -> None:
        self._tenants = tenants

    async def on_request(self, call: Call) -> None:
        if call.tenant is None:  # a sub-call carries its parent's
            call.tenant = self._tenants.authenticate(call.headers)
