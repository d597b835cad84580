"""Choose the admission backend from the ``state`` URL; backends are imported lazily."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast
from urllib.parse import urlsplit

from claude_proxy.admission.base import NO_OBSERVER, Admission, AdmissionObserver
from claude_proxy.admission.fallback import FailOpenAdmission
from claude_proxy.admission.memory import MemoryAdmission
from claude_proxy.state.backends import load_backend
from claude_proxy.tenancy import AdmissionSettings, Tenant

__all__ = ["BACKENDS", "open_admission"]

# URL scheme -> "module:class". redis-py is imported only when a redis URL is configured.
BACKENDS = {
    "memory": "claude_proxy.admission.memory:MemoryAdmission",
    "redis": "claude_proxy.admission.redis:RedisAdmission",
    "rediss": "claude_proxy.admission.redis:RedisAdmission",
    "unix": "claude_proxy.admission.redis:RedisAdmission",
}


async def open_admission(
    settings: AdmissionSettings,
    tenants: Iterable[Tenant],
    observer: AdmissionObserver = NO_OBSERVER,
) -> Admission:
    """The backend for ``settings.state``, started (connected, configured); close it later.

    ``observer`` hears what this process's requests wait for and hold. With
    ``on_state_failure: open`` a shared backend is wrapped so that it falls back to this
    process's own limits while its store is down.
    """
    tenants = list(tenants)
    scheme = urlsplit(settings.state).scheme
    backend = load_backend(BACKENDS, scheme)
    shared = cast(Admission, await backend.open(settings, tenants, observer))
    if settings.on_state_failure == "closed" or isinstance(shared, MemoryAdmission):
        return shared
    local = await MemoryAdmission.open(settings, tenants, observer)
    return FailOpenAdmission(shared, local, observer)
