"""Prometheus metrics of one gateway app, on a registry of its own.

The pipeline calls the methods of ``Metrics``; ``render()`` answers ``GET /metrics``
and ``snapshot()`` feeds the dashboard. Label children are resolved once per label
tuple and kept, so a request costs a few dict look-ups and float additions.

Several worker processes: prometheus_client picks its storage when it is first
imported, from ``PROMETHEUS_MULTIPROC_DIR`` in the environment (a process-wide
choice this module cannot make). The caller passes the same directory as
``multiprocess_dir``; ``render()`` then merges every worker's files, and the
gauges say how (``livesum``: in-flight work adds up across workers).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from claude_proxy.observability.families import Families
from claude_proxy.observability.labels import (
    CONFIG_NAME,
    REASON_NAME,
    BoundedLabels,
    ModelLabels,
    RouteLabels,
    TenantLabels,
    error_label,
    status_class,
)
from claude_proxy.observability.snapshot import build_snapshot

__all__ = ["BREAKER_STATES", "Metrics", "UsageLike", "mark_worker_dead"]

BREAKER_STATES: dict[str, int] = {"closed": 0, "half_open": 1, "half-open": 1, "open": 2}
_TOKEN_TYPES = ("input", "output", "cache_read", "cache_write")
_GENERATIONS = {0: "0", 1: "1", 2: "2"}


class UsageLike(Protocol):
    """Token counts as the API reports them (``admission.Usage`` is one)."""

    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def cache_read_input_tokens(self) -> int: ...
    @property
    def cache_creation_input_tokens(self) -> int: ...


def mark_worker_dead(multiprocess_dir: str | os.PathLike[str], pid: int) -> None:
    """Drop a dead worker's live gauges (call from the process that supervises workers)."""
    # prometheus_client's multiprocess module is not annotated.
    mark_process_dead(pid, os.fspath(multiprocess_dir))  # type: ignore[no-untyped-call]


class Metrics:
    """All metric families of one app, and the calls the pipeline makes on them."""

    def __init__(
        self,
        tenants: Iterable[str] = (),
        *,
        models: Iterable[str] = (),
        multiprocess_dir: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``tenants``: the configured tenant names (other names become ``"other"``).

        ``models``: model names to label from the start (others once one succeeds).
        ``multiprocess_dir``: the ``PROMETHEUS_MULTIPROC_DIR`` of a multi-worker server.
        """
        _check_value_storage(multiprocess_dir)
        self.registry = CollectorRegistry(auto_describe=True)
        self._tenant = TenantLabels(tenants)
        self._model = ModelLabels(models)
        self._route = RouteLabels()
        self._deployment = BoundedLabels(CONFIG_NAME)
        self._outcome = BoundedLabels()
        self._entity = BoundedLabels()
        self._action = BoundedLabels(limit=8)
        self._reason = BoundedLabels(REASON_NAME)
        self._policy = BoundedLabels(CONFIG_NAME, limit=128)  # names from the config
        self._parameter = BoundedLabels(limit=8)
        self._policy_action = BoundedLabels(limit=8)
        self._policy_reason = BoundedLabels(limit=32)
        self._clock = clock
        self.families = Families(self.registry)
        self._exposed = self.registry
        if multiprocess_dir is not None:
            self._exposed = CollectorRegistry()
            collector = MultiProcessCollector  # not annotated upstream
            collector(self._exposed, path=os.fspath(multiprocess_dir))  # type: ignore[no-untyped-call]
            _check_files_written(Path(multiprocess_dir))
        # Label tuple -> children, filled on first use.
        self._request_children: dict[tuple[str, ...], tuple[Histogram, Counter | None]] = {}
        self._ttft_children: dict[str, Histogram] = {}
        self._token_children: dict[tuple[str, str], tuple[Counter, ...]] = {}
        self._attempt_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self._tenant_gauges: dict[str, tuple[Gauge, Gauge]] = {}
        self._queue_wait_children: dict[str, Histogram] = {}
        self._prompt_cache_children: dict[tuple[str, str], Counter] = {}
        self._in_flight = self.families.in_flight

    # -- per request ---------------------------------------------------------------

    def request_started(self) -> None:
        """An API call entered the gateway; pair with exactly one ``request_finished``."""
        self._in_flight.inc()

    def request_finished(
        self,
        *,
        tenant: str | None,
        model: str | None,
        stream: bool,
        status: int,
        duration: float,
        error_type: str | None = None,
        overhead: float | None = None,
        ttft: float | None = None,
        usage: UsageLike | None = None,
        path: str = "/v1/messages",
    ) -> None:
        """Record one finished request (durations in seconds).

        ``path``: the request's path, labelled as its route (ids templated).

        ``status``: the status sent (499 for a client that went away, with
        ``error_type="client_disconnect"``). ``error_type``: the Anthropic
        ``error.type`` of an error answer, or one of ``labels.ERROR_TYPES``;
        derived from ``status`` when omitted. A stream that failed after its 200
        passes its error type with status 200 and counts as an error.
        """
        self._in_flight.dec()
        tenant_l = self._tenant(tenant)
        model_l = self._model(model, confirmed=200 <= status < 300)
        route_l = self._route(path, confirmed=200 <= status < 400)
        error_l = error_label(error_type, status)
        stream_l = "yes" if stream else "no"
        key = (tenant_l, model_l, route_l, stream_l, status_class(status), error_l)
        children = self._request_children.get(key)
        if children is None:
            errors = None if error_l == "none" else self.families.errors.labels(*key)
            children = self._request_children[key] = (
                self.families.request_duration.labels(*key),
                errors,
            )
        children[0].observe(duration)
        if children[1] is not None:
            children[1].inc()
        if overhead is not None:
            self.families.overhead.observe(overhead)
        if ttft is not None:
            child = self._ttft_children.get(model_l)
            if child is None:
                child = self._ttft_children[model_l] = self.families.ttft.labels(model_l)
            child.observe(ttft)
        if usage is not None:
            self._count_tokens(tenant_l, model_l, usage)

    def _count_tokens(self, tenant: str, model: str, usage: UsageLike) -> None:
        counters = self._token_children.get((tenant, model))
        if counters is None:
            counters = tuple(
                self.families.tokens.labels(tenant, model, kind) for kind in _TOKEN_TYPES
            )
            self._token_children[(tenant, model)] = counters
        for counter, count in zip(
            counters,
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_input_tokens,
                usage.cache_creation_input_tokens,
            ),
            strict=True,
        ):
            if count > 0:
                counter.inc(count)

    def gc_pause(self, generation: int, seconds: float) -> None:
        """One collection of the cyclic garbage collector (generation 0, 1 or 2)."""
        self.families.gc_pause.labels(_GENERATIONS.get(generation, "2")).observe(seconds)

    def token_gap(self, seconds: float) -> None:
        """Time between two content events of one stream."""
        self.families.inter_token_gap.observe(seconds)

    def stream_opened(self) -> None:
        self.families.open_streams.inc()

    def stream_closed(self) -> None:
        self.families.open_streams.dec()

    def queue_wait(self, tenant: str | None, seconds: float) -> None:
        label = self._tenant(tenant)
        child = self._queue_wait_children.get(label)
        if child is None:
            child = self.families.queue_wait_seconds.labels(label)
            self._queue_wait_children[label] = child
        child.observe(seconds)

    # -- upstream --------------------------------------------------------------------

    def upstream_attempt(self, deployment: str, outcome: str, seconds: float) -> None:
        """One attempt ended; ``outcome`` as in ``UpstreamStats`` (``ok``, ``http_529``, ...)."""
        key = (self._deployment(deployment), self._outcome(outcome))
        children = self._attempt_children.get(key)
        if children is None:
            children = (
                self.families.attempts.labels(*key),
                self.families.attempt_duration.labels(*key),
            )
            self._attempt_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def retry(self) -> None:
        self.families.retries.inc()

    def gave_up(self, reason: str) -> None:
        """Retrying stopped: ``"attempts exhausted"``, ``"deadline"``, ``"retry budget spent"``."""
        self.families.gave_up.labels(self._reason(reason)).inc()

    def stream_broke(self, deployment: str, reason: str) -> None:
        """An open upstream stream broke: ``"cut"``, ``"eof"`` or ``"error_event"``."""
        key = (self._deployment(deployment), self._reason(reason))
        self.families.stream_breaks.labels(*key).inc()

    def heal(self) -> None:
        self.families.heals.inc()

    def unhealable(self) -> None:
        self.families.unhealable.inc()

    def tokens_used(self, tenant: str | None, model: str | None, usage: UsageLike) -> None:
        """Count a response's tokens on their own (a stream that outlived its request)."""
        self._count_tokens(self._tenant(tenant), self._model(model, confirmed=True), usage)

    def resume(self) -> None:
        self.families.resumes.inc()

    def continuation(self) -> None:
        self.families.continuations.inc()

    def redaction(self, entity: str, action: str, count: int = 1) -> None:
        """Sensitive values found (``action``: detect, mask, pseudonymize, block,
        mask_response), by entity type; never the values."""
        entity_label = self._entity(entity.lower())
        self.families.redactions.labels(entity_label, self._action(action)).inc(count)

    def policy_applied(self, policy: str, parameter: str, action: str) -> None:
        """A generation parameter a policy changed (``action``: set, default, clamped,
        fitted); labels are the policy's name and the parameter's, never a value."""
        labels = (self._policy(policy), self._parameter(parameter), self._policy_action(action))
        self.families.policy_applied.labels(*labels).inc()

    def policy_skipped(self, policy: str, parameter: str, reason: str) -> None:
        """A parameter a policy wanted that the request could not carry."""
        labels = (self._policy(policy), self._parameter(parameter), self._policy_reason(reason))
        self.families.policy_skipped.labels(*labels).inc()

    def prompt_cache(self, outcome: str, added: Iterable[str]) -> None:
        """What automatic prompt caching did to one request: its outcome, and where each
        breakpoint it added went (both from fixed vocabularies)."""
        self._prompt_cache_child("outcome", outcome).inc()
        for where in added:
            self._prompt_cache_child("where", where).inc()

    def _prompt_cache_child(self, kind: str, value: str) -> Counter:
        child = self._prompt_cache_children.get((kind, value))
        if child is None:
            family = self.families.prompt_cache_requests
            if kind == "where":
                family = self.families.prompt_cache_breakpoints
            child = self._prompt_cache_children[(kind, value)] = family.labels(value)
        return child

    def session_cache_hit(self) -> None:
        self.families.session_cache_hits.inc()

    def response_cache_lookup(self, tenant: str | None, result: str, reason: str = "") -> None:
        """A request of a tenant with the response cache: ``hit``, ``miss`` or ``bypass``
        (with its ``reason``)."""
        label = self._tenant(tenant)
        families = self.families
        if result == "hit":
            families.response_cache_hits.labels(label).inc()
        elif result == "miss":
            families.response_cache_misses.labels(label).inc()
        else:
            families.response_cache_bypasses.labels(label, reason).inc()

    def response_cache_store(self, result: str) -> None:
        """A whole answer offered to the cache: ``stored``, ``too_large`` or ``failed``."""
        self.families.response_cache_stores.labels(result).inc()

    def response_cache_bytes(self, held: int) -> None:
        """Bytes of answers the in-memory response cache holds now."""
        self.families.response_cache_bytes.set(held)

    def admitted_without_shared_state(self, tenant: str | None) -> None:
        """A request admitted on local limits while the shared state was unreachable."""
        self.families.admitted_without_shared_state.labels(self._tenant(tenant)).inc()

    def set_breaker(self, deployment: str, state: int | str) -> None:
        """``state``: 0/1/2 or a ``BreakerState`` value (``"closed"``, ``"half_open"``, ...)."""
        value = state if isinstance(state, int) else BREAKER_STATES[state]
        self.families.breaker.labels(self._deployment(deployment)).set(value)

    def set_window(self, n: int) -> None:
        self.families.window.set(n)

    # -- admission -------------------------------------------------------------------

    def tenant_waiting(self, tenant: str | None, delta: int) -> None:
        """``delta`` more (or fewer) of this process's requests wait for admission."""
        self._tenant_children(tenant)[1].inc(delta)

    def tenant_holding(self, tenant: str | None, delta: int) -> None:
        """``delta`` more (or fewer) of this process's requests hold an admission slot."""
        self._tenant_children(tenant)[0].inc(delta)

    def set_tenant_load(self, tenant: str | None, in_flight: int, queued: int) -> None:
        """Set both gauges outright (the admission backends report deltas instead)."""
        in_flight_gauge, queued_gauge = self._tenant_children(tenant)
        in_flight_gauge.set(in_flight)
        queued_gauge.set(queued)

    def _tenant_children(self, tenant: str | None) -> tuple[Gauge, Gauge]:
        label = self._tenant(tenant)
        children = self._tenant_gauges.get(label)
        if children is None:
            children = (
                self.families.tenant_in_flight.labels(label),
                self.families.queue_depth.labels(label),
            )
            self._tenant_gauges[label] = children
        return children

    # -- export ----------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The exposition for ``GET /metrics``: body and content type."""
        # The 0.0.4 text format: what every Prometheus version scrapes (our names need
        # none of the 1.0.0 format's escaping).
        return generate_latest(self._exposed), CONTENT_TYPE_PLAIN_0_0_4

    def snapshot(self) -> dict[str, Any]:
        """Plain numbers for the dashboard (all workers' in multi-process mode)."""
        return build_snapshot(self._exposed.collect(), self._clock())


def _check_value_storage(multiprocess_dir: str | os.PathLike[str] | None) -> None:
    multiprocess = bool(getattr(values.ValueClass, "_multiprocess", False))
    if multiprocess_dir is not None and not multiprocess:
        raise ValueError(
            "multiprocess_dir given, but prometheus_client was imported without "
            "PROMETHEUS_MULTIPROC_DIR in the environment: set it before the workers start"
        )
    if multiprocess_dir is None and multiprocess:
        raise ValueError(
            "PROMETHEUS_MULTIPROC_DIR is set in the environment: pass it as multiprocess_dir"
        )


def _check_files_written(directory: Path) -> None:
    # The unlabelled counters wrote this process's file when they were created; if it
    # is not in ``directory``, the environment names another directory than the caller.
    if not (directory / f"counter_{os.getpid()}.db").exists():
        raise ValueError(
            f"PROMETHEUS_MULTIPROC_DIR in the environment is not {os.fspath(directory)!r}"
        )
