"""A feature's settings for each tenant: the gateway's, or a tenant's own merged over them.

Features with a per-tenant section (``pii``, ``prompt_caching``, ``response_cache``) merge
it over the gateway's once, at start-up, and look the result up by tenant name per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from claude_proxy.tenancy.directory import Tenant, TenantDirectory
from claude_proxy.tenancy.settings import TenantSettings

__all__ = ["PerTenant"]

_Own = TypeVar("_Own")
_Value = TypeVar("_Value")


class PerTenant(Generic[_Value]):
    """``make(None)`` for tenants without a section, ``make(section)`` for those with one."""

    __slots__ = ("_by_name", "default")

    def __init__(
        self,
        tenants: TenantDirectory,
        section: Callable[[TenantSettings], _Own | None],
        make: Callable[[_Own | None], _Value],
    ) -> None:
        self.default = make(None)
        self._by_name: dict[str, _Value] = {}
        for tenant in tenants.tenants:
            own = section(tenant.settings)
            if own is not None:
                self._by_name[tenant.name] = make(own)

    def of(self, tenant: Tenant | None) -> _Value:
        return self.default if tenant is None else self._by_name.get(tenant.name, self.default)

    def __iter__(self) -> Iterator[_Value]:
        """The gateway's value, then each tenant's own."""
        yield self.default
        yield from self._by_name.values()
