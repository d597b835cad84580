"""Who is calling: tenant keys to tenants (constant time), and which models each may use."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from claude_proxy.errors import AuthenticationFailed, PermissionDenied
from claude_proxy.tenancy.settings import TenantSettings, check_tenants

__all__ = ["DEFAULT_TENANT", "Tenant", "TenantDirectory"]

# The tenant every caller is when no tenants are configured (the gateway stays open).
DEFAULT_TENANT = "default"


@dataclass(frozen=True, slots=True)
class Tenant:
    """An authenticated caller. Its repr names it and shows nothing else."""

    name: str
    settings: TenantSettings = field(repr=False, compare=False)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class TenantDirectory:
    """Authenticates requests by key and checks the model they ask for."""

    __slots__ = ("_by_digest", "_open", "tenants")

    def __init__(self, tenants: list[Tenant], *, open_access: bool) -> None:
        self.tenants: tuple[Tenant, ...] = tuple(tenants)
        self._open = open_access
        # Keys are kept only as SHA-256 digests; looking a digest up in a dict takes the
        # same time whatever the key's content, so timing reveals nothing about the keys.
        self._by_digest: dict[bytes, Tenant] = {
            _digest(key.get_secret_value()): tenant
            for tenant in tenants
            for key in tenant.settings.keys
        }

    @classmethod
    def from_settings(cls, settings: Iterable[TenantSettings]) -> TenantDirectory:
        """A directory of the configured tenants; with none, everyone is one open tenant."""
        configured = check_tenants(list(settings))
        if not configured:
            unrestricted = TenantSettings.model_construct(
                name=DEFAULT_TENANT, keys=[], models=["*"]
            )
            return cls([Tenant(DEFAULT_TENANT, unrestricted)], open_access=True)
        return cls([Tenant(item.name, item) for item in configured], open_access=False)

    @property
    def is_open(self) -> bool:
        """True when no tenants are configured and no key is asked for."""
        return self._open

    def authenticate(self, headers: Mapping[str, str]) -> Tenant:
        """The tenant whose key is in ``x-api-key`` or ``Authorization: Bearer``.

        ``headers`` should be case-insensitive (aiohttp's are); lower-case names are used.
        """
        if self._open:
            return self.tenants[0]
        key = headers.get("x-api-key")
        if not key:
            scheme, _, credentials = (headers.get("authorization") or "").partition(" ")
            key = credentials.strip() if scheme.lower() == "bearer" else ""
        if not key:
            raise AuthenticationFailed("x-api-key header is required")
        tenant = self._by_digest.get(_digest(key))
        if tenant is None:
            raise AuthenticationFailed("invalid x-api-key")
        return tenant

    @staticmethod
    def limits_models(tenant: Tenant) -> bool:
        """Whether the tenant may use only some models (``models`` is not ``["*"]``)."""
        return tenant.settings.models != ["*"]

    def authorize_model(self, tenant: Tenant, model: str) -> None:
        """Raise PermissionDenied unless one of the tenant's model globs matches."""
        patterns = tenant.settings.models
        if not self.limits_models(tenant):
            return  # the common case, and the open gateway's: no pattern to match
        if not any(fnmatchcase(model, pattern) for pattern in patterns):
            raise PermissionDenied(f"tenant {tenant.name!r} may not use model {model!r}")

    def __repr__(self) -> str:
        names = ", ".join(tenant.name for tenant in self.tenants)
        return f"TenantDirectory([{names}])"
