"""The ``model_access`` stage: the tenant may use the model the body names.

A message batch names a model per request and is relayed unread, so for a tenant limited
to some models its body is read here (bounded by ``max_body_bytes``) and every request's
model checked; without that a batch would be a way round the limit. The body then goes
up as read.
"""

from __future__ import annotations

import asyncio

from claude_proxy.errors import InvalidRequest
from claude_proxy.pipeline.call import Call, Route, refuse_duplicate_keys
from claude_proxy.tenancy import Tenant, TenantDirectory

__all__ = ["ModelAccess"]


class ModelAccess:
    name = "model_access"
    routes = frozenset({Route.MESSAGES, Route.COUNT_TOKENS, Route.DOCUMENTS, Route.RELAY})

    def __init__(self, tenants: TenantDirectory) -> None:
        self._tenants = tenants

    async def on_request(self, call: Call) -> None:
        tenant = call.tenant
        if tenant is None:
            return
        if call.route is Route.RELAY:
            if creates_batch(call) and self._tenants.limits_models(tenant):
                await self._check_batch(call, tenant)
        elif call.model is not None:
            self._tenants.authorize_model(tenant, call.model)

    async def _check_batch(self, call: Call, tenant: Tenant) -> None:
        if not call.has_body and call.read_body is not None:
            call.load_body(await call.read_body(), acted_on=())
        try:
            requests = call.body["requests"]
            models = {str(item["params"]["model"]) for item in requests}
        except (KeyError, TypeError):
            raise InvalidRequest(
                "A message batch must be a JSON object whose requests each have params.model."
            ) from None
        raw = call.upstream_body or b""
        if raw.count(b'"model"') > len(requests):
            # Perhaps a params object naming two models, one checked and one run. The
            # slow parse that tells runs in a thread: a batch may be tens of megabytes.
            await asyncio.to_thread(refuse_duplicate_keys, raw)
        for model in sorted(models):
            self._tenants.authorize_model(tenant, model)


def creates_batch(call: Call) -> bool:
    """Whether the call creates a message batch (its body names models and messages)."""
    # The path is normalised at ingress; repeated or trailing slashes are the spellings
    # left that a server might still take for the same route.
    path = "/".join(part for part in call.path.partition("?")[0].split("/") if part)
    return call.method == "POST" and path == "v1/messages/batches"
