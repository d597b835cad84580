"""Observability: Prometheus metrics, the request log and the live dashboard."""

from __future__ import annotations

from claude_proxy.observability.dashboard import add_dashboard_routes
from claude_proxy.observability.logging import (
    configure_logging,
    get_logger,
    log_request,
    request_log_fields,
)
from claude_proxy.observability.metrics import Metrics, UsageLike, mark_worker_dead
from claude_proxy.observability.null import NullMetrics

__all__ = [
    "Metrics",
    "NullMetrics",
    "UsageLike",
    "add_dashboard_routes",
    "configure_logging",
    "get_logger",
    "log_request",
    "mark_worker_dead",
    "request_log_fields",
]
