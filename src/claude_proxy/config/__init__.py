"""Configuration: the typed settings tree and how it is loaded from YAML and env."""

from claude_proxy.config.loading import ConfigError, load_settings
from claude_proxy.config.settings import (
    ListenSettings,
    LogSettings,
    Settings,
    TimeoutSettings,
    UpstreamSettings,
)

__all__ = [
    "ConfigError",
    "ListenSettings",
    "LogSettings",
    "Settings",
    "TimeoutSettings",
    "UpstreamSettings",
    "load_settings",
]
