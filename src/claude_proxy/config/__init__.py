"""Configuration: the typed settings tree and how it is loaded from YAML and env."""

from claude_proxy.config.loading import ConfigError, load_settings, worker_environment
from claude_proxy.config.settings import (
    BreakerSettings,
    ClientSettings,
    ContinuationSettings,
    ListenSettings,
    LogSettings,
    RetrySettings,
    Settings,
    ShutdownSettings,
    StreamSettings,
    TimeoutSettings,
    UpstreamSettings,
)

__all__ = [
    "BreakerSettings",
    "ClientSettings",
    "ConfigError",
    "ContinuationSettings",
    "ListenSettings",
    "LogSettings",
    "RetrySettings",
    "Settings",
    "ShutdownSettings",
    "StreamSettings",
    "TimeoutSettings",
    "UpstreamSettings",
    "load_settings",
    "worker_environment",
]
