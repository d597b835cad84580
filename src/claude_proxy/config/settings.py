"""The one typed settings object the whole gateway is built from.

Every field has a safe default, so an empty configuration file (or none) gives a
working gateway on 127.0.0.1:8000 in front of the real API. Unknown keys are
rejected so that a typo in a YAML file is reported instead of silently ignored.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = ["ListenSettings", "LogSettings", "Settings", "TimeoutSettings", "UpstreamSettings"]

DEFAULT_UPSTREAM = "https://api.anthropic.com"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class TimeoutSettings(_Section):
    """Upstream timeouts in seconds."""

    connect: float = Field(default=5.0, gt=0)
    # Longest silence allowed while reading a response; streams send pings, so a
    # long gap means a dead connection rather than a slow model.
    read: float = Field(default=600.0, gt=0)


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class Settings(_Section):
    """Everything the gateway needs, validated once at start-up."""

    listen: ListenSettings = ListenSettings()
    upstreams: list[UpstreamSettings] = Field(default_factory=lambda: [UpstreamSettings()])
    timeouts: TimeoutSettings = TimeoutSettings()
    # The API's own limit is 32 MB; larger bodies are refused before they are read.
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    # Pooled connections towards the upstream (0 = unbounded).
    upstream_pool_size: int = Field(default=0, ge=0)
    # Without tenants the gateway has no way to authenticate callers, so by default
    # it only serves clients on this machine. Set true only behind your own auth.
    allow_remote_without_auth: bool = False
    log: LogSettings = LogSettings()

    @field_validator("upstreams")
    @classmethod
    def _at_least_one(cls, value: list[UpstreamSettings]) -> list[UpstreamSettings]:
        if not value:
            raise ValueError("at least one upstream is required")
        return value

    @property
    def primary(self) -> UpstreamSettings:
        return self.upstreams[0]
