"""Tenants: who may call the gateway, with which models, under which limits."""

from claude_proxy.tenancy.directory import DEFAULT_TENANT, Tenant, TenantDirectory
from claude_proxy.tenancy.settings import (
    AdmissionSettings,
    AdmissionTuning,
    TenantList,
    TenantSettings,
    check_tenants,
)

__all__ = [
    "DEFAULT_TENANT",
    "AdmissionSettings",
    "AdmissionTuning",
    "Tenant",
    "TenantDirectory",
    "TenantList",
    "TenantSettings",
    "check_tenants",
]
