"""Who may read the operational pages (``/metrics``, ``/dashboard``): they show every tenant.

With ``metrics.operator_key`` set, callers that present it: as ``Authorization: Bearer``
(Prometheus' ``authorization`` block), as the password of ``Authorization: Basic`` (a
browser asks for it, the user name is ignored) or as ``x-api-key``. Without one, the
same rule as an open API: clients on the gateway's own host, unless
``allow_remote_without_auth``. Tenant keys never open them.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from aiohttp import web

from claude_proxy.errors import AuthenticationFailed, PermissionDenied
from claude_proxy.pipeline.stages.loopback import is_loopback
from claude_proxy.services import SERVICES

__all__ = ["require_operator"]

# A browser shows its log-in box for Basic; a scraper sends Bearer without being asked.
_CHALLENGE = {"www-authenticate": 'Basic realm="claude-proxy operators", charset="UTF-8"'}


def require_operator(request: web.Request) -> None:
    """Raise the Anthropic error that refuses ``request``, or return if it may read."""
    settings = request.app[SERVICES].settings
    key = settings.metrics.operator_key
    if key is not None:
        presented = _credential(request.headers)
        expected = key.get_secret_value().encode()
        if presented is None or not hmac.compare_digest(presented.encode(), expected):
            raise AuthenticationFailed(
                "The operational pages need the operator key (metrics.operator_key).",
                headers=_CHALLENGE,
            )
        return
    if not settings.allow_remote_without_auth and not is_loopback(request.remote):
        raise PermissionDenied(
            "The operational pages are served only on the gateway's own host; set "
            "metrics.operator_key to read them from elsewhere."
        )


def _credential(headers: Mapping[str, str]) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return headers.get("x-api-key")
