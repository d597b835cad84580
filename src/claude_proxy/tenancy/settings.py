"""Typed configuration of tenants and of admission (windows, limits, shared state)."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from claude_proxy.pii.settings import PiiSettings
from claude_proxy.prompt_cache.settings import PromptCacheSettings
from claude_proxy.response_cache.settings import ResponseCachePolicy

__all__ = [
    "ADMISSION_SCHEMES",
    "AdmissionSettings",
    "AdmissionTuning",
    "TenantList",
    "TenantSettings",
    "check_tenants",
]

# URL schemes `state` may use; the admission registry maps each to a backend.
ADMISSION_SCHEMES = frozenset({"memory", "redis", "rediss", "unix"})


class _Section(BaseModel):
    # Errors must not echo inputs: a tenant's input holds its keys in plain text. The root
    # Settings model needs the same flag, since nested errors are rendered by the root.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class TenantSettings(_Section):
    """One client team: its keys, its window, its per-minute limits and its share."""

    name: str = Field(min_length=1)
    keys: list[SecretStr] = Field(min_length=1)
    # In-flight window of this tenant (None: only the gateway-wide window applies).
    max_concurrent: int | None = Field(default=None, ge=1)
    requests_per_minute: int | None = Field(default=None, ge=1)
    input_tokens_per_minute: int | None = Field(default=None, ge=1)
    output_tokens_per_minute: int | None = Field(default=None, ge=1)
    # Share of the upstream window when it is contended (weighted fair queueing).
    weight: float = Field(default=1.0, gt=0)
    # Seconds a request may wait for its turn before it is answered 429.
    queue_timeout: float = Field(default=10.0, ge=0)
    models: list[str] = Field(default_factory=lambda: ["*"])
    # Continuations past max_tokens when a request does not say (x-proxy-max-continuations).
    max_continuations: int = Field(default=0, ge=0, le=100)
    # Sensitive-data redaction for this tenant: the fields given replace the gateway's.
    pii: PiiSettings | None = None
    # Retention of this tenant's sessions after their last turn (None: sessions.ttl_seconds).
    session_ttl_seconds: float | None = Field(default=None, gt=0)
    # The exact response cache for this tenant: the fields given replace the gateway's.
    response_cache: ResponseCachePolicy | None = None
    # Automatic prompt caching for this tenant: the fields given replace the gateway's.
    prompt_caching: PromptCacheSettings | None = None

    @field_validator("keys")
    @classmethod
    def _no_blank_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(not key.get_secret_value() for key in value):
            raise ValueError("keys must not be empty strings")
        return value


def check_tenants(tenants: list[TenantSettings]) -> list[TenantSettings]:
    """Reject duplicate names and keys shared by two tenants (never echoing a key).

    Usable as the body of a pydantic ``field_validator`` on a ``tenants`` list.
    """
    names: set[str] = set()
    owners: dict[str, str] = {}
    for tenant in tenants:
        if tenant.name in names:
            raise ValueError(f"tenant name {tenant.name!r} is used twice")
        names.add(tenant.name)
        for index, key in enumerate(tenant.keys):
            owner = owners.setdefault(key.get_secret_value(), tenant.name)
            if owner != tenant.name:
                raise ValueError(
                    f"key #{index + 1} of tenant {tenant.name!r} also belongs to tenant {owner!r}"
                )
    return tenants


# The field type for a Settings tree: ``tenants: TenantList = []``.
TenantList = Annotated[list[TenantSettings], AfterValidator(check_tenants)]


class AdmissionTuning(_Section):
    """How admission behaves: leases, the AIMD window, the Redis key prefix, and what to do
    when Redis is down.

    The ``admission:`` section of the configuration; the window's ceiling and the
    state URL are top-level settings (``upstream_max_concurrent``, ``state``).
    """

    # Prefix of every Redis key; wrap it in {braces} to keep all keys in one Cluster slot.
    key_prefix: str = "claude-proxy:admission:"
    # Slot lease (Redis): renewed while held, so a killed replica frees its slots this fast.
    lease_seconds: float = Field(default=30.0, gt=0)
    # AIMD: on 429/529 the window becomes max(window_min, floor(window * decrease_factor)),
    # at most once per decrease_cooldown seconds (the 429s of calls already in flight are one
    # congestion signal, not many). After `window` successful calls in a row (one "round",
    # as TCP counts an RTT) it grows by increase_step, up to upstream_max_concurrent.
    window_min: int = Field(default=1, ge=1)
    decrease_factor: float = Field(default=0.5, gt=0, lt=1)
    increase_step: int = Field(default=1, ge=1)
    decrease_cooldown: float = Field(default=1.0, ge=0)
    # A tenant that asked for admission within this many seconds is "active": while it is
    # below its weighted share of the window and has no request waiting, slots are kept
    # free for its next requests (as many as it recently held at once, up to its share, at
    # least one), so a flood by others cannot take every slot it frees. 0 turns spare
    # slots off (purely work-conserving fair queueing).
    active_seconds: float = Field(default=2.0, ge=0)
    # While the shared state (Redis) cannot be reached: "closed" refuses requests (503
    # api_error with retry-after; /readyz unready), so no replica can spend more than
    # the shared limits allow; "open" admits on each replica's own windows and limits
    # (so N replicas may allow N times the limits) and returns to the shared ones when
    # Redis answers again. Memory state never fails.
    on_state_failure: Literal["closed", "open"] = "closed"


class AdmissionSettings(AdmissionTuning):
    """Everything an admission backend needs: the tuning plus the window and state URL."""

    # Ceiling of the adaptive window of concurrent calls towards the API.
    upstream_max_concurrent: int = Field(default=64, ge=1)
    # memory:// (one process) or redis://host:port/db (limits shared by all replicas).
    state: str = "memory://"

    @field_validator("state")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in ADMISSION_SCHEMES:
            known = ", ".join(f"{name}://" for name in sorted(ADMISSION_SCHEMES))
            raise ValueError(f"unknown state scheme {scheme!r}; use one of {known}")
        return value

    @model_validator(mode="after")
    def _min_below_max(self) -> AdmissionSettings:
        if self.window_min > self.upstream_max_concurrent:
            raise ValueError("window_min must not exceed upstream_max_concurrent")
        return self
