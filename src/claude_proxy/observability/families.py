"""The metric families of the gateway: names, help, labels, buckets, multi-process modes.

Names are part of the contract with ``deploy/`` (alerts, Grafana) and the design
note; the tests there check every expression against this list.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["REQUEST_LABELS", "Families"]

REQUEST_LABELS = ("tenant", "model", "route", "stream", "status_class", "error_type")

# Requests to a model run for seconds to minutes; the gateway's own work for microseconds.
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 600)
TTFT_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 15, 30, 60)
GAP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
GC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
QUEUE_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Families:
    """One of each metric family, registered on ``registry``."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.request_duration = Histogram(
            "api_request_duration_seconds",
            "Time from request received to last byte sent, per request.",
            REQUEST_LABELS,
            registry=r,
            buckets=DURATION_BUCKETS,
        )
        self.errors = Counter(
            "api_errors", "Requests that ended in an error.", REQUEST_LABELS, registry=r
        )
        self.ttft = Histogram(
            "api_time_to_first_token_seconds",
            "Time from request received to the first content token sent.",
            ("model",),
            registry=r,
            buckets=TTFT_BUCKETS,
        )
        self.inter_token_gap = Histogram(
            "api_inter_token_gap_seconds",
            "Time between consecutive content events of a stream.",
            registry=r,
            buckets=GAP_BUCKETS,
        )
        self.attempt_duration = Histogram(
            "api_upstream_attempt_duration_seconds",
            "Duration of one upstream attempt until its response headers or failure.",
            ("deployment", "outcome"),
            registry=r,
            buckets=DURATION_BUCKETS,
        )
        self.overhead = Histogram(
            "api_gateway_overhead_seconds",
            "Time spent in the gateway itself: total minus waiting on the upstream.",
            registry=r,
            buckets=OVERHEAD_BUCKETS,
        )
        self.queue_wait_seconds = Histogram(
            "api_queue_wait_seconds",
            "Time a request waited for admission.",
            ("tenant",),
            registry=r,
            buckets=QUEUE_BUCKETS,
        )
        self.gc_pause = Histogram(
            "api_gc_pause_seconds",
            "Pauses of the cyclic garbage collector; every stream waits them out.",
            ("generation",),
            registry=r,
            buckets=GC_BUCKETS,
        )
        self.tokens = Counter(
            "api_tokens",
            "Tokens reported by the upstream.",
            ("tenant", "model", "type"),
            registry=r,
        )
        self.attempts = Counter(
            "api_upstream_attempts", "Upstream attempts.", ("deployment", "outcome"), registry=r
        )
        self.retries = Counter(
            "api_upstream_retries", "Upstream attempts that were retries.", registry=r
        )
        self.heals = Counter(
            "api_stream_heals", "Broken streams continued on a new attempt.", registry=r
        )
        self.unhealable = Counter(
            "api_stream_unhealable",
            "Broken streams that could not be continued (the client got an error event).",
            registry=r,
        )
        self.stream_breaks = Counter(
            "api_upstream_stream_breaks",
            "Upstream event streams that broke after they opened.",
            ("deployment", "reason"),
            registry=r,
        )
        self.gave_up = Counter(
            "api_upstream_gave_up",
            "Requests whose retrying stopped, by why (attempts, deadline, budget).",
            ("reason",),
            registry=r,
        )
        self.resumes = Counter("api_stream_resumes", "Streams resumed by a client.", registry=r)
        self.continuations = Counter(
            "api_continuations", "Responses continued past max_tokens.", registry=r
        )
        self.redactions = Counter(
            "api_redactions",
            "Sensitive values found in requests (and answers), by entity type and action.",
            ("entity", "action"),
            registry=r,
        )
        self.policy_applied = Counter(
            "api_policy_applied",
            "Generation parameters a policy set, defaulted, clamped or fitted.",
            ("policy", "parameter", "action"),
            registry=r,
        )
        self.policy_skipped = Counter(
            "api_policy_skipped",
            "Parameters a policy wanted that the request could not carry (not sent), by why.",
            ("policy", "parameter", "reason"),
            registry=r,
        )
        self.prompt_cache_requests = Counter(
            "api_prompt_cache_requests",
            "Messages requests seen by automatic prompt caching, by outcome (added, off, "
            "short, automatic, full, covered, invalid).",
            ("outcome",),
            registry=r,
        )
        self.prompt_cache_breakpoints = Counter(
            "api_prompt_cache_breakpoints_added",
            "Cache breakpoints the gateway added, by where (tools, system, messages).",
            ("where",),
            registry=r,
        )
        self.session_cache_hits = Counter(
            "api_session_cache_hits", "Session look-ups served from the cache.", registry=r
        )
        self.response_cache_hits = Counter(
            "api_response_cache_hits",
            "Requests answered from the response cache.",
            ("tenant",),
            registry=r,
        )
        self.response_cache_misses = Counter(
            "api_response_cache_misses",
            "Requests looked up in the response cache and not found there.",
            ("tenant",),
            registry=r,
        )
        self.response_cache_bypasses = Counter(
            "api_response_cache_bypasses",
            "Requests of tenants with a response cache that it may not answer, by why "
            "(sampling, session, no-store, no-cache, warm-up, unavailable).",
            ("tenant", "reason"),
            registry=r,
        )
        self.response_cache_stores = Counter(
            "api_response_cache_stores",
            "Whole answers offered to the response cache, by result (stored, too_large, failed).",
            ("result",),
            registry=r,
        )
        self.admitted_without_shared_state = Counter(
            "api_admission_without_shared_state",
            "Requests admitted on this process's own limits while Redis was unreachable "
            "(admission.on_state_failure: open).",
            ("tenant",),
            registry=r,
        )
        # No stream label: a call is counted as it arrives, before its body says
        # whether it streams (api_open_streams counts the streams).
        self.in_flight = Gauge(
            "api_requests_in_flight",
            "API calls inside the gateway.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.tenant_in_flight = Gauge(
            "api_tenant_in_flight",
            "Admitted requests holding a slot in this process, per tenant.",
            ("tenant",),
            registry=r,
            multiprocess_mode="livesum",
        )
        self.open_streams = Gauge(
            "api_open_streams",
            "Event streams being relayed.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.queue_depth = Gauge(
            "api_queue_depth",
            "Requests of this process waiting for admission, per tenant.",
            ("tenant",),
            registry=r,
            multiprocess_mode="livesum",
        )
        self.response_cache_bytes = Gauge(
            "api_response_cache_bytes",
            "Bytes of answers held by the in-memory response cache (not set with Redis).",
            registry=r,
            multiprocess_mode="livesum",
        )
        # Each worker adapts its own window (or reads the one shared through Redis):
        # the largest is what an operator compares with the upstream's limits.
        self.window = Gauge(
            "api_upstream_window",
            "Adaptive upstream concurrency window.",
            registry=r,
            multiprocess_mode="livemax",
        )
        # The worst state any worker sees: one worker with an open breaker is worth an alert.
        self.breaker = Gauge(
            "api_circuit_breaker_state",
            "Circuit breaker: 0 closed, 1 half-open, 2 open.",
            ("deployment",),
            registry=r,
            multiprocess_mode="livemax",
        )
