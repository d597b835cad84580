"""Stage 2: who is calling, may they use this model, and wait for their turn.

Authentication and the model check are cheap and come first; admission may
wait (fairly, bounded by the tenant's queue_timeout) for a slot in the tenant's
window and the gateway's upstream window, and reserves the tokens the request
may use. The ticket is released, with the real usage, when the response ends.
"""

from __future__ import annotations

import asyncio
import time

from claude_proxy.admission import Admission, Ticket, Usage
from claude_proxy.pipeline.call import Call
from claude_proxy.pipeline.record import Record
from claude_proxy.tenancy import Tenant, TenantDirectory, estimate_input_tokens

__all__ = ["admit", "authenticate", "finish"]


def authenticate(tenants: TenantDirectory, call: Call) -> Tenant:
    tenant = tenants.authenticate(call.headers)
    model = call.body.get("model")
    if isinstance(model, str):
        tenants.authorize_model(tenant, model)
    call.tenant = tenant.name
    return tenant


async def admit(admission: Admission, tenant: Tenant, call: Call, record: Record) -> Ticket:
    """Wait for the tenant's turn; the time waited goes into ``record``.

    The tenant gauges (holding, waiting) are fed by the admission backend itself, whose
    observer the metrics are (``admission.base.AdmissionObserver``).
    """
    max_tokens = call.body.get("max_tokens")
    reserved_output = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 0
    started = time.perf_counter()
    try:
        return await admission.admit(tenant, estimate_input_tokens(call.body), reserved_output)
    finally:
        record.queue_wait = time.perf_counter() - started


async def finish(admission: Admission, ticket: Ticket, call: Call, overloaded: bool) -> None:
    """Release the slot with the real usage and tell the adaptive window how it went.

    Shielded: this runs when the client has gone away too, and must not be cut short.
    """
    usage = Usage.from_api(call.usage) if call.usage is not None else None

    async def settle() -> None:
        await ticket.release(usage)
        await admission.on_upstream_status(529 if overloaded else 200)

    await asyncio.shield(settle())
