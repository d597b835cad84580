"""The ``model_access`` stage: the tenant may use the model the body names."""

from __future__ import annotations

from claude_proxy.pipeline.call import Call, Route
from claude_proxy.tenancy import TenantDirectory

__all__ = ["ModelAccess"]


class ModelAccess:
    name = "model_access"
    routes = frozenset({Route.MESSAGES, Route.COUNT_TOKENS})

    def __init__(self, tenants: TenantDirectory) -> None:
        self._tenants = tenants

    async def on_request(self, call: Call) -> None:
        model = call.model
        if model is not None and call.tenant is not None:
            self._tenants.authorize_model(call.tenant, model)
