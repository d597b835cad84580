"""The last stage: what one request did, for its metrics and its line in the request log.

The middleware opens a ``Record`` as a request arrives; the stages fill in what
they learn (the call, the attempts, the queue wait, the stream); the middleware
closes it with the status sent, whether a handler returned, raised or was
cancelled by a client that went away.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from claude_proxy.admission import Usage
from claude_proxy.observability import Metrics, log_request
from claude_proxy.pipeline.call import Call
from claude_proxy.upstream.forwarder import AttemptLog

if TYPE_CHECKING:
    from claude_proxy.streaming.generation import Generation

__all__ = ["OVERHEAD_HEADER", "Record", "close_record"]

OVERHEAD_HEADER = "x-proxy-overhead-ms"


@dataclass(slots=True)
class Record:
    """One request as the metrics and the request log see it (times from perf_counter)."""

    request_id: str
    started: float
    call: Call | None = None
    tenant: str | None = None
    attempts: AttemptLog | None = None
    # Seconds waited for admission (None: the request did not go through admission).
    queue_wait: float | None = None
    generation: Generation | None = None
    # Whether request_started was counted (and for which kind), so the gauge pairs up.
    in_flight: bool | None = None
    overhead: float | None = None

    @property
    def answered(self) -> bool:
        """A stream whose client has had the whole answer (its end is still winding down)."""
        return self.generation is not None and self.generation.answered

    def begin(self, metrics: Metrics, call: Call) -> None:
        self.call = call
        self.in_flight = call.stream
        metrics.request_started(call.stream)

    def mark_overhead(self) -> float:
        """The gateway's own time so far: total minus upstream, backoff and queue waits."""
        elapsed = time.perf_counter() - self.started - (self.queue_wait or 0.0)
        log = self.attempts
        if log is not None:
            elapsed -= log.upstream_seconds + log.backoff_seconds
        self.overhead = max(elapsed, 0.0)
        return self.overhead

    def overhead_header(self) -> str:
        return f"{self.mark_overhead() * 1000:.2f}"


def close_record(
    record: Record, metrics: Metrics, logger: Any | None, status: int, error_type: str | None
) -> None:
    """Count the request and write its log line (``status`` 499: the client went away).

    ``logger`` None: no log line (the configured level leaves requests out).
    """
    duration = time.perf_counter() - record.started
    call = record.call
    stream = call.stream if call is not None else False
    model = call.body.get("model") if call is not None else None
    model = model if isinstance(model, str) else None
    generation = record.generation
    ttft: float | None = None
    if generation is not None:
        if generation.first_content is not None:
            ttft = generation.first_content - record.started
        if status == 200 and error_type is None:
            error_type = generation.error_type
    usage_fields = call.usage if call is not None else None
    usage = Usage.from_api(usage_fields) if usage_fields else None
    if record.in_flight is None:
        metrics.request_started(stream)
    overhead = record.overhead if record.overhead is not None else record.mark_overhead()
    # A stream's tokens are counted when its generation ends (it may outlive this request).
    metrics.request_finished(
        tenant=record.tenant,
        model=model,
        stream=stream,
        status=status,
        duration=duration,
        error_type=error_type,
        overhead=overhead,
        ttft=ttft,
        usage=None if generation is not None else usage,
    )
    if record.queue_wait is not None:
        metrics.queue_wait(record.tenant, record.queue_wait)
    log = record.attempts
    if logger is None:
        return
    # A dead log stream (a closed pipe) must not fail the request it describes.
    with contextlib.suppress(OSError, ValueError):
        log_request(
            logger,
            request_id=record.request_id,
            tenant=record.tenant,
            model=model,
            stream=stream,
            status=status,
            attempts=log.count if log is not None else 0,
            duration=duration,
            error_type=error_type,
            overhead=overhead,
            ttft=ttft,
            upstream=log.upstream_seconds if log is not None else None,
            queue_wait=record.queue_wait,
            usage=usage,
        )
