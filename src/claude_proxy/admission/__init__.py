"""Admission: fair queueing, per-tenant windows and limits, an adaptive upstream window."""

from claude_proxy.admission.base import (
    Admission,
    AdmissionSnapshot,
    TenantLoad,
    Ticket,
    Usage,
)
from claude_proxy.admission.registry import BACKENDS, open_admission
from claude_proxy.tenancy import AdmissionSettings

__all__ = [
    "BACKENDS",
    "Admission",
    "AdmissionSettings",
    "AdmissionSnapshot",
    "TenantLoad",
    "Ticket",
    "Usage",
    "open_admission",
]
