"""Label values for metrics: every value comes from a small, fixed or config-given set.

Anything the caller controls (model names, tenant names from a bad key, error
strings) is mapped onto a bounded vocabulary here, so that no request can create
a new time series or smuggle its content into ``/metrics``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "CODE_NAME",
    "CONFIG_NAME",
    "DEFAULT_TENANT",
    "ERROR_TYPES",
    "OTHER",
    "REASON_NAME",
    "BoundedLabels",
    "ModelLabels",
    "RouteLabels",
    "TenantLabels",
    "error_label",
    "status_class",
]

OTHER = "other"
DEFAULT_TENANT = "default"

ERROR_TYPES: tuple[str, ...] = (
    "rate_limit",
    "overloaded",
    "api_error",
    "timeout",
    "invalid_request",
    "authentication",
    "permission",
    "not_found",
    "request_too_large",
    "client_disconnect",
    "none",
)

# Anthropic's ``error.type`` values (and our GatewayError ones) -> label values.
_API_ERROR_TYPES: dict[str, str] = {
    "rate_limit_error": "rate_limit",
    "overloaded_error": "overloaded",
    "api_error": "api_error",
    "timeout_error": "timeout",
    "invalid_request_error": "invalid_request",
    "authentication_error": "authentication",
    "permission_error": "permission",
    "billing_error": "permission",
    "not_found_error": "not_found",
    "request_too_large": "request_too_large",
}
_API_ERROR_TYPES.update({label: label for label in ERROR_TYPES})

_STATUS_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request",
    401: "authentication",
    402: "permission",
    403: "permission",
    404: "not_found",
    408: "timeout",
    413: "request_too_large",
    429: "rate_limit",
    499: "client_disconnect",
    504: "timeout",
    529: "overloaded",
}

_STATUS_CLASSES: dict[int, str] = {n: f"{n}xx" for n in range(1, 6)}


def status_class(status: int) -> str:
    """``"2xx"``, ``"4xx"``, ... for an HTTP status; ``"other"`` outside 100-599.

    529 (Anthropic's overloaded) is a ``"5xx"``; a client that went away is
    recorded by the caller with 499, a ``"4xx"``.
    """
    return _STATUS_CLASSES.get(status // 100, OTHER) if 100 <= status < 600 else OTHER


def error_label(error_type: str | None, status: int) -> str:
    """The ``error_type`` label: from the API's ``error.type`` if given, else from the status.

    Unknown error types of a failed request become ``"api_error"``; a request
    below 400 without an error type is ``"none"``.
    """
    if error_type is not None:
        return _API_ERROR_TYPES.get(error_type, "api_error")
    if status < 400:
        return "none"
    return _STATUS_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request")


class TenantLabels:
    """Tenant names from the config are labels; anything else is ``"other"``."""

    __slots__ = ("_known",)

    def __init__(self, tenants: Iterable[str]) -> None:
        self._known = frozenset(tenants) | {DEFAULT_TENANT}

    def __call__(self, tenant: str | None) -> str:
        """``None`` (no tenants configured) is ``"default"``."""
        if tenant is None:
            return DEFAULT_TENANT
        return tenant if tenant in self._known else OTHER

    @property
    def known(self) -> frozenset[str]:
        return self._known


_DATE_SUFFIX = re.compile(r"[-@]\d{8}$")
_MODEL_SHAPE = re.compile(r"claude-[a-z0-9-]+")
MAX_MODEL_LABEL = 40


class _Confirmed:
    """Shapes that become labels of their own once the upstream has accepted one (at most
    ``limit`` of them); every other shape is ``"other"``."""

    __slots__ = ("_limit", "_shapes")

    def __init__(self, limit: int, known: Iterable[str] = ()) -> None:
        self._limit = limit
        self._shapes = set(known)

    def label(self, shape: str, confirmed: bool) -> str:
        if shape in self._shapes:
            return shape
        if confirmed and shape != OTHER and len(self._shapes) < self._limit:
            self._shapes.add(shape)
            return shape
        return OTHER


class ModelLabels:
    """Normalises model names into a bounded set of labels.

    ``claude-sonnet-4-5-20250929`` becomes ``claude-sonnet-4-5``; names of
    another shape, or longer than 40 characters, are ``"other"``. A well-shaped
    name still comes from the client, so it only becomes a label of its own
    once a request for it has succeeded (the upstream knows the model), and at
    most ``limit`` such names are admitted: sending made-up ``claude-xyz``
    names cannot grow the number of series.
    """

    __slots__ = ("_cache", "_confirmed", "_limit")

    def __init__(self, known: Iterable[str] = (), *, limit: int = 64) -> None:
        self._limit = limit
        shapes = {self._shape(name) for name in known} - {OTHER}
        self._confirmed = _Confirmed(limit, shapes)
        # raw name -> normalised shape (or OTHER); bounded like the labels themselves.
        self._cache: dict[str, str] = {}

    def __call__(self, model: str | None, *, confirmed: bool = False) -> str:
        """The label for ``model``; ``confirmed`` says the upstream accepted it."""
        if not model:
            return OTHER
        shape = self._cache.get(model)
        if shape is None:
            shape = self._shape(model)
            if len(self._cache) < 4 * self._limit:
                self._cache[model] = shape
        return self._confirmed.label(shape, confirmed)

    @staticmethod
    def _shape(model: str) -> str:
        if len(model) > 2 * MAX_MODEL_LABEL:  # don't even run a regex over junk
            return OTHER
        name = _DATE_SUFFIX.sub("", model)
        if len(name) > MAX_MODEL_LABEL or not _MODEL_SHAPE.fullmatch(name):
            return OTHER
        return name


_WORD = re.compile(r"[a-z_]{1,32}|v[0-9]{1,2}")  # words and versions (v1) stay
MAX_ROUTE_SEGMENTS = 6
MAX_ROUTE_LENGTH = 256
# The gateway's own routes, labelled from the start.
GATEWAY_ROUTES = (
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/models",
    "/v1/models/{id}",
    "/v1/streams/{id}",
)


class RouteLabels:
    """Request paths as a bounded set of route labels, never raw paths.

    The query goes, and every segment that is not a plain lower-case word becomes
    ``{id}``: ``/v1/files/file_011CNha8/content`` is ``/v1/files/{id}/content``. A
    template becomes a label of its own once the upstream has answered it below 400,
    at most ``limit`` of them, so requests for made-up paths cannot add series; until
    then, and beyond the limit, it is ``"other"``.
    """

    __slots__ = ("_confirmed",)

    def __init__(self, *, limit: int = 32) -> None:
        self._confirmed = _Confirmed(limit, GATEWAY_ROUTES)

    def __call__(self, path: str, *, confirmed: bool = False) -> str:
        return self._confirmed.label(route_template(path), confirmed)


def route_template(path: str) -> str:
    """``path`` (with or without its query) with ids templated; ``"other"`` if too long."""
    path = path.partition("?")[0]
    if path in GATEWAY_ROUTES:
        return path
    if len(path) > MAX_ROUTE_LENGTH:  # don't even split junk
        return OTHER
    segments = path.strip("/").split("/")
    if len(segments) > MAX_ROUTE_SEGMENTS:
        return OTHER
    return "/" + "/".join(s if _WORD.fullmatch(s) else "{id}" for s in segments)


CONFIG_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
CODE_NAME = re.compile(r"[a-z0-9_]{1,32}")
REASON_NAME = re.compile(r"[a-z0-9_ ]{1,32}")


class BoundedLabels:
    """Names from the config or the code (deployments, attempt outcomes, entity types).

    They are not user input, but a bug elsewhere should not be able to grow the
    series without bound or export a stray value either: the first ``limit``
    distinct names of the expected ``shape`` are kept, the rest are ``"other"``.
    """

    __slots__ = ("_limit", "_seen", "_shape")

    def __init__(self, shape: re.Pattern[str] = CODE_NAME, limit: int = 32) -> None:
        self._shape = shape
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, name: str) -> str:
        if name in self._seen:
            return name
        if len(self._seen) < self._limit and self._shape.fullmatch(name):
            self._seen.add(name)
            return name
        return OTHER
