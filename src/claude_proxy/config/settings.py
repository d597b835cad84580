"""The one typed settings object the whole gateway is built from.

Every field has a safe default, so an empty configuration file (or none) gives a
working gateway on 127.0.0.1:8000 in front of the real API. Unknown keys are
rejected so that a typo in a YAML file is reported instead of silently ignored.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from claude_proxy.documents.settings import DocumentSettings
from claude_proxy.pii.settings import PiiSettings, merged
from claude_proxy.policies.settings import PolicyRule, check_policies
from claude_proxy.prompt_cache.settings import PromptCacheSettings
from claude_proxy.replay.base import ReplaySettings
from claude_proxy.response_cache.settings import ResponseCacheSettings
from claude_proxy.sessions.base import SessionSettings
from claude_proxy.tenancy.directory import DEFAULT_TENANT
from claude_proxy.tenancy.settings import (
    ADMISSION_SCHEMES,
    AdmissionSettings,
    AdmissionTuning,
    TenantList,
)

__all__ = [
    "BreakerSettings",
    "ClientSettings",
    "ContinuationSettings",
    "ListenSettings",
    "LogSettings",
    "MetricsSettings",
    "RetrySettings",
    "RuntimeSettings",
    "Settings",
    "ShutdownSettings",
    "StreamSettings",
    "TimeoutSettings",
    "UpstreamSettings",
    "inconsistencies",
]

DEFAULT_UPSTREAM = "https://api.anthropic.com"


class _Section(BaseModel):
    # hide_input_in_errors: a bad value may be a secret (a key); errors name fields only.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class ListenSettings(_Section):
    """Where the gateway accepts connections."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    @property
    def is_loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


class UpstreamSettings(_Section):
    """One deployment of the Messages API (the real one, or the simulator)."""

    name: str = "primary"
    base_url: str = DEFAULT_UPSTREAM
    # None: forward the client's own credential unchanged (transparent mode).
    api_key: SecretStr | None = None
    weight: float = Field(default=1.0, gt=0)

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        # An empty key (``api_key: ${KEY:-}`` with KEY unset) is no key, as the upstream
        # client treats it: the rules between fields must see it so too, or a gateway
        # with tenants would forward their keys upstream.
        return None if value == "" else value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class TimeoutSettings(_Section):
    """Upstream timeouts in seconds."""

    connect: float = Field(default=5.0, gt=0)
    # Longest silence allowed while reading a response once it has begun; streams send
    # pings, so a long gap means a dead connection rather than a slow model.
    read: float = Field(default=120.0, gt=0)


class RetrySettings(_Section):
    """How failed upstream attempts are retried (defaults from the design note)."""

    max_attempts: int = Field(default=4, ge=1, le=20)
    base_delay: float = Field(default=0.5, ge=0)
    max_delay: float = Field(default=60.0, ge=0)
    # exponential: delay * (1 + jitter * random()); full_jitter: random() * delay.
    strategy: Literal["exponential", "full_jitter"] = "exponential"
    jitter: float = Field(default=0.1, ge=0, le=1)
    # Retries may be at most this fraction of recent requests (plus min_per_second),
    # so that during an outage the gateway does not multiply the load on the API.
    budget: float = Field(default=0.2, ge=0)
    budget_window: float = Field(default=10.0, gt=0)
    budget_min_per_second: float = Field(default=10.0, ge=0)
    # Longest wait for one attempt's response. A stream waits first_byte_timeout for its
    # headers; a JSON answer comes whole, later the more it may say: first_byte_timeout +
    # max_tokens / min_output_rate seconds (the SDK's own expectation, 128,000 tokens an
    # hour), never more than attempt_timeout.
    first_byte_timeout: float = Field(default=60.0, gt=0)
    min_output_rate: float = Field(default=35.0, gt=0)
    attempt_timeout: float = Field(default=600.0, gt=0)
    # No new attempt starts after this many seconds since the request arrived.
    deadline: float = Field(default=900.0, gt=0)
    # Continue a broken stream from the text already sent instead of failing it.
    heal_streams: bool = True
    max_heals: int = Field(default=3, ge=0)
    # How the tokens of a broken part whose usage never arrived are counted (they bound
    # the max_tokens left for the heal, and go into the answer's usage): estimate (the
    # gateway's estimator, which errs high) or count_tokens (the upstream's own count:
    # exact, one free call per heal; the estimate when that call fails).
    heal_token_count: Literal["estimate", "count_tokens"] = "estimate"


class ContinuationSettings(_Section):
    """Answers continued past max_tokens (``x-proxy-max-continuations: N`` per request)."""

    # The most continuations a request may ask for; 0 turns the feature off.
    max_per_request: int = Field(default=10, ge=0, le=100)


class BreakerSettings(_Section):
    """Circuit breaker per deployment: open on a high failure rate, probe, close.

    A failure *rate* over a window, not a count of consecutive failures: under a
    steady 20 % error rate, runs of five failures happen by chance and would
    take a working deployment out; a dead one still trips after min_requests.
    """

    failure_rate: float = Field(default=0.5, gt=0, le=1)
    window: float = Field(default=10.0, gt=0)
    min_requests: int = Field(default=10, ge=1)
    open_seconds: float = Field(default=30.0, gt=0)


class ShutdownSettings(_Section):
    # On SIGTERM: readyz turns unready for unready_delay seconds (so load balancers
    # stop sending), then the listener closes and in-flight work has drain_seconds.
    unready_delay: float = Field(default=0.0, ge=0)
    drain_seconds: float = Field(default=30.0, ge=0)


class ClientSettings(_Section):
    """Limits on client connections, so that no client can hold all of a process's sockets.

    Every worker process applies them on its own. See ``claude_proxy.connections``.
    """

    # A new connection must send a complete request head (request line and headers)
    # within this many seconds, however many bytes it trickles in; else it is closed.
    header_timeout: float = Field(default=30.0, gt=0)
    # A request body must be complete this many seconds after its head, plus one second
    # for every body_min_rate bytes received: a large upload on a slow link goes on, a
    # body sent a byte at a time does not. Else: 408 timeout_error, and the connection
    # closes. body_min_rate 0: body_timeout alone.
    body_timeout: float = Field(default=30.0, gt=0)
    body_min_rate: int = Field(default=65_536, ge=0)
    # Between requests, a keep-alive connection has this long to send its next complete
    # head. Behind a load balancer, keep it above the balancer's own idle timeout (AWS
    # ALB 60 s, nginx 60 s, Google Cloud 600 s), or it may reuse a connection being closed.
    keepalive_timeout: float = Field(default=75.0, gt=0)
    # Open client connections per process. auto: the open-file limit (ulimit -n) less
    # headroom for upstream connections, Redis and files, at most 50,000.
    max_connections: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    # Per client address (IPv6: per /64). auto: half of max_connections; 0: no limit.
    # Behind a load balancer or a NAT every client shares an address: raise it or use 0.
    max_connections_per_address: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"


class StreamSettings(_Section):
    """Resumable streams and the WebSocket endpoint."""

    # Every SSE event carries an id and is kept in a replay log (in memory, or Redis
    # with a redis:// state URL) so a client that lost its connection can resume.
    resumable: bool = True
    # After the client disconnects, the upstream call goes on this long waiting for a
    # resume; then it is cancelled. 0 cancels at once (nothing generates for nobody).
    resume_grace: float = Field(default=30.0, ge=0)
    replay: ReplaySettings = ReplaySettings()
    # WebSocket keep-alive: a ping this often; a peer that misses the pong is closed.
    ws_heartbeat: float = Field(default=20.0, gt=0)
    # Requests one WebSocket may run at once; more are answered with an error event.
    ws_max_concurrent: int = Field(default=64, ge=1)


class MetricsSettings(_Section):
    # false: nothing is recorded (GET /metrics answers 404); the request log is separate.
    enabled: bool = True
    # Who may read /metrics and /dashboard: with a key, callers that send it (as
    # Authorization: Bearer, or x-api-key); without one, clients on the gateway's own host
    # (unless allow_remote_without_auth). Tenant keys never do: the pages show every
    # tenant's traffic.
    operator_key: SecretStr | None = None
    # Several worker processes share one exposition through this directory (it is
    # prometheus_client's PROMETHEUS_MULTIPROC_DIR, which the environment sets).
    multiprocess_dir: str | None = None


class RuntimeSettings(_Section):
    """How the cyclic garbage collector runs in a gateway process (see ``collector``)."""

    # managed: automatic collection off; a full collection once the tracked objects
    # created since the last one reach gc_growth times its survivors (at least
    # gc_min_objects). python: Python's own generational collector, gc_thresholds.
    gc: Literal["managed", "python"] = "managed"
    gc_growth: float = Field(default=2.0, ge=0.25)
    gc_min_objects: int = Field(default=100_000, ge=1_000)
    gc_thresholds: tuple[int, int, int] = (700, 10, 10)
    # What is alive after start-up (modules, the app) is left out of every collection.
    gc_freeze: bool = True


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class Settings(_Section):
    """Everything the gateway needs, validated once at start-up."""

    listen: ListenSettings = ListenSettings()
    # Worker processes sharing the listening socket (one per core is the usual choice).
    # More than one needs state: redis://, so that limits and streams are shared.
    workers: int = Field(default=1, ge=1, le=256)
    upstreams: list[UpstreamSettings] = Field(default_factory=lambda: [UpstreamSettings()])
    timeouts: TimeoutSettings = TimeoutSettings()
    retry: RetrySettings = RetrySettings()
    continuations: ContinuationSettings = ContinuationSettings()
    # Conversations kept by x-session-id (None: off); a URL alone is the store's URL.
    sessions: SessionSettings | None = None
    # POST /v1/documents: map-reduce over a long document.
    documents: DocumentSettings = DocumentSettings()
    # Sensitive data in requests: detect, mask, pseudonymize or block (off by default).
    pii: PiiSettings = PiiSettings()
    # Identical requests answered from a store of whole answers (opt-in per tenant).
    response_cache: ResponseCacheSettings = ResponseCacheSettings()
    # Cache breakpoints added on long, stable prefixes the client left unmarked (on).
    prompt_caching: PromptCacheSettings = PromptCacheSettings()
    breaker: BreakerSettings = BreakerSettings()
    shutdown: ShutdownSettings = ShutdownSettings()
    clients: ClientSettings = ClientSettings()
    # The API's own limit is 32 MB; larger bodies are refused before they are read.
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    # Relayed routes (files, message batches, any /v1 route the gateway does not parse)
    # stream their bodies through, never holding them: the Files API takes 500 MB files.
    max_relay_body_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    # Pooled connections towards the upstream (0 = unbounded).
    upstream_pool_size: int = Field(default=0, ge=0)
    # Without tenants the gateway has no way to authenticate callers, so by default
    # it only serves clients on this machine. Set true only behind your own auth.
    allow_remote_without_auth: bool = False
    # Who may call the gateway and under which limits; none = open to loopback clients.
    tenants: TenantList = Field(default_factory=list)
    # Generation policies: rules that set or clamp temperature, top_p, max_tokens, the
    # thinking budget and effort (see policies/; none: the stage is not in the chain).
    # After tenants: the tenant names the rules match on are checked against them.
    policies: list[PolicyRule] = Field(default_factory=list)
    # The gateway's total window of concurrent calls towards the API (adapts below it).
    upstream_max_concurrent: int = Field(default=64, ge=1)
    # Where shared state lives: memory:// (one process) or redis://host:port/db (replicas).
    state: str = "memory://"
    admission: AdmissionTuning = AdmissionTuning()
    streams: StreamSettings = StreamSettings()
    metrics: MetricsSettings = MetricsSettings()
    runtime: RuntimeSettings = RuntimeSettings()
    log: LogSettings = LogSettings()

    @field_validator("upstreams")
    @classmethod
    def _at_least_one(cls, value: list[UpstreamSettings]) -> list[UpstreamSettings]:
        if not value:
            raise ValueError("at least one upstream is required")
        names = [upstream.name for upstream in value]
        if len(set(names)) != len(names):
            raise ValueError("upstream names must be unique")
        return value

    @field_validator("sessions", mode="before")
    @classmethod
    def _sessions_url(cls, value: object) -> object:
        return {"url": value} if isinstance(value, str) else value

    @field_validator("state")
    @classmethod
    def _known_state(cls, value: str) -> str:
        scheme = value.partition("://")[0]
        if scheme not in ADMISSION_SCHEMES:
            known = ", ".join(f"{name}://" for name in sorted(ADMISSION_SCHEMES))
            raise ValueError(f"unknown state scheme {scheme!r}; use one of {known}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        problems = inconsistencies(
            window_min=self.admission.window_min,
            upstream_max_concurrent=self.upstream_max_concurrent,
            workers=self.workers,
            state=self.state,
            tenants=bool(self.tenants),
            keyless_upstream=any(u.api_key is None for u in self.upstreams),
        )
        if problems:
            raise ValueError("; ".join(message for _, message in problems))
        return self

    @model_validator(mode="after")
    def _pii_names_known(self) -> Settings:
        policies = [("pii", self.pii)] + [
            (f"tenants[{tenant.name}].pii", merged(self.pii, tenant.pii))
            for tenant in self.tenants
            if tenant.pii is not None
        ]
        for where, policy in policies:
            if unknown := policy.unknown_names():
                raise ValueError(f"{where}.entity_modes names unknown entity types {unknown}")
        return self

    @field_validator("policies")
    @classmethod
    def _policies_consistent(
        cls, value: list[PolicyRule], info: ValidationInfo
    ) -> list[PolicyRule]:
        tenants = info.data.get("tenants")  # absent when they are invalid themselves
        names = None if tenants is None else {t.name for t in tenants} or {DEFAULT_TENANT}
        check_policies(value, names)
        return value

    @property
    def replay_settings(self) -> ReplaySettings:
        """The replay log's settings; its Redis keys follow ``admission.key_prefix`` unless
        ``streams.replay.key_prefix`` is set, so two gateways sharing a Redis by prefix
        share neither admission nor replay keys."""
        replay = self.streams.replay
        if "key_prefix" in replay.model_fields_set:
            return replay
        base = self.admission.key_prefix
        prefix = base[: -len("admission:")] if base.endswith("admission:") else base
        return replay.model_copy(update={"key_prefix": prefix + "replay:"})

    @property
    def response_cache_settings(self) -> ResponseCacheSettings:
        """The response cache's settings; its store is this process's memory unless
        ``response_cache.url`` names one, and its Redis keys follow ``admission.key_prefix``
        as the replay log's do.

        Never the ``state`` Redis by default: that one holds admission, replay and session
        keys, sized for them and often ``noeviction``; answers written there without a byte
        bound would fill it (then every admission fails) or, under ``allkeys-lru``, evict
        those keys. A Redis for answers is named on purpose, ideally its own."""
        cache = self.response_cache
        update: dict[str, str] = {}
        if "key_prefix" not in cache.model_fields_set:
            base = self.admission.key_prefix
            prefix = base[: -len("admission:")] if base.endswith("admission:") else base
            update["key_prefix"] = prefix + "response-cache:"
        return cache.model_copy(update=update)

    @property
    def primary(self) -> UpstreamSettings:
        return self.upstreams[0]

    @property
    def admission_settings(self) -> AdmissionSettings:
        return AdmissionSettings(
            **self.admission.model_dump(),
            upstream_max_concurrent=self.upstream_max_concurrent,
            state=self.state,
        )


_SHARED_STATES = ("redis://", "rediss://", "unix://")


def inconsistencies(
    *,
    window_min: int | None,
    upstream_max_concurrent: int | None,
    workers: int | None,
    state: str | None,
    tenants: bool | None,
    keyless_upstream: bool | None,
) -> list[tuple[str, str]]:
    """Rules between fields, as (field, problem). A None input (unknown: the field itself
    is invalid) skips the rules that need it, so that a configuration with bad fields still
    hears about these in the same run."""
    problems: list[tuple[str, str]] = []
    if (
        window_min is not None
        and upstream_max_concurrent is not None
        and window_min > upstream_max_concurrent
    ):
        problems.append(("admission.window_min", "must not exceed upstream_max_concurrent"))
    # Per-process memory would give each worker its own limits and replay logs: limits
    # would multiply and a resume could land on a worker without the stream.
    shared = state is None or state.startswith(_SHARED_STATES)  # None: unknown, no verdict
    if workers is not None and workers > 1 and not shared:
        problems.append(
            ("workers", "workers above 1 need a shared state: set state: redis://host:port/db")
        )
    if tenants and keyless_upstream:
        # Clients then send tenant keys, which must never be forwarded upstream.
        problems.append(("upstreams", "with tenants configured, every upstream needs an api_key"))
    return problems
