"""Stage 3 for streams: open the upstream stream, then hand it to a generation.

Shared by the SSE route and the WebSocket endpoint. Until a generation owns the
admission ticket, this stage releases it itself, whatever goes wrong; from then
on the generation releases it when the answer ends, with the real usage.
"""

from __future__ import annotations

from dataclasses import dataclass

from claude_proxy.admission import Ticket, Usage
from claude_proxy.pipeline.admit import finish
from claude_proxy.pipeline.call import Call
from claude_proxy.pipeline.record import Record
from claude_proxy.services import Services
from claude_proxy.streaming.generation import Generation, Sink
from claude_proxy.streaming.streams import stream_owner
from claude_proxy.tenancy import Tenant
from claude_proxy.upstream.forwarder import OpenStream, UpstreamReply

__all__ = ["Opened", "make_generation", "open_upstream_stream"]


@dataclass(slots=True)
class Opened:
    """An upstream stream that is open, and its replay stream id (None: not resumable)."""

    stream: OpenStream
    stream_id: str | None


async def open_upstream_stream(
    services: Services,
    call: Call,
    tenant: Tenant,
    ticket: Ticket,
    record: Record,
    *,
    resumable: bool = True,
) -> Opened | UpstreamReply:
    """The open stream, or the upstream's final error reply (the ticket then released)."""
    log = record.attempts = services.forwarder.start(call)
    try:
        opened = await services.forwarder.open_stream(log, call.raw_body)
        if isinstance(opened, UpstreamReply):
            await finish(services.admission, ticket, call, log.overloaded)
            return opened
        stream_id = None
        if resumable:
            owner = stream_owner(tenant, call.headers, services.tenants.is_open)
            stream_id = await services.streams.new_stream(owner)
    except BaseException:
        await finish(services.admission, ticket, call, log.overloaded)
        raise
    return Opened(opened, stream_id)


def make_generation(
    services: Services,
    call: Call,
    ticket: Ticket,
    record: Record,
    opened: Opened,
    sink: Sink,
) -> Generation:
    """A generation that will release ``ticket`` and count the tokens when it ends.

    If it is never started, call ``abandon`` on it so the ticket is released.
    """
    log = record.attempts
    assert log is not None
    tenant = record.tenant

    async def settle(generation: Generation) -> None:
        await finish(services.admission, ticket, call, log.overloaded)
        if call.usage:
            model = call.body.get("model")
            services.metrics.tokens_used(
                tenant, model if isinstance(model, str) else None, Usage.from_api(call.usage)
            )

    generation = Generation(
        forwarder=services.forwarder,
        log=log,
        opened=opened.stream,
        sink=sink,
        replay=services.streams.replay if opened.stream_id is not None else None,
        stream_id=opened.stream_id or "",
        resume_grace=services.streams.settings.resume_grace,
        on_end=settle,
    )
    record.generation = generation
    return generation
