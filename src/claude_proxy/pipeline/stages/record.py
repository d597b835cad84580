"""The ``record`` stage: every API call counted in the metrics and written to the request log.

First in every chain, so that whatever refuses or fails a call later, its
``on_finish`` still sees it: bad input, a wrong key, an upstream error and a client
that left are all one record each. Tokens are counted by the upstream-call service,
where each upstream call ends (a stream may outlive its request).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from claude_proxy.admission import Usage
from claude_proxy.observability import Metrics, log_request
from claude_proxy.observability.labels import OTHER
from claude_proxy.pipeline.call import Call
from claude_proxy.pipeline.stage import API_ROUTES, Outcome

__all__ = ["Record"]


class Record:
    name = "record"
    routes = API_ROUTES

    def __init__(self, metrics: Metrics, request_log: Any | None, *, open_access: bool) -> None:
        """``request_log`` None: no log line (the configured level leaves requests out)."""
        self._metrics = metrics
        self._log = request_log
        self._open_access = open_access

    async def on_request(self, call: Call) -> None:
        self._metrics.request_started()

    def on_finish(self, call: Call, outcome: Outcome) -> None:
        duration = time.perf_counter() - call.started
        status, error_type = outcome.status, outcome.error_type
        tenant = call.tenant.name if call.tenant is not None else None
        if tenant is None and not self._open_access:
            tenant = OTHER  # not authenticated: no tenant's label may be claimed
        generation = call.generation
        ttft: float | None = None
        if generation is not None:
            if generation.first_content is not None:
                ttft = generation.first_content - call.started
            if status == 200 and error_type is None:
                error_type = generation.error_type
        if error_type is None:
            error_type = call.answer_error
        overhead = call.overhead if call.overhead is not None else call.mark_overhead()
        self._metrics.request_finished(
            tenant=tenant,
            model=call.model,
            stream=call.stream,
            status=status,
            duration=duration,
            error_type=error_type,
            overhead=overhead,
            # The time to first token is the upstream's: an answer a stage gave in its
            # place (a response cache hit) would pull it towards zero. Such a request
            # still counts in the request duration, whose count is the request rate.
            ttft=ttft if call.prepared is None else None,
            path=call.path,
        )
        if call.queue_wait is not None:
            self._metrics.queue_wait(tenant, call.queue_wait)
        if self._log is None:
            return
        log = call.attempts
        # A dead log stream (a closed pipe) must not fail the request it describes.
        with contextlib.suppress(OSError, ValueError):
            log_request(
                self._log,
                request_id=call.request_id,
                tenant=tenant,
                model=call.model,
                stream=call.stream,
                status=status,
                attempts=log.count if log is not None else 0,
                duration=duration,
                error_type=error_type,
                overhead=overhead,
                ttft=ttft,
                upstream=log.upstream_seconds if log is not None else None,
                queue_wait=call.queue_wait,
                usage=Usage.from_api(call.usage) if call.usage else None,
            )
