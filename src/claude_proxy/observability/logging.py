"""Structured logs: structlog set-up (for the CLI only) and the one line per request.

Every event, ours and the standard library's, passes ``drop_sensitive_fields``:
a field named like a credential or like prompt content is removed before any
renderer sees it, so a careless ``log.info("x", headers=...)`` cannot leak a key.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal, Protocol

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from claude_proxy.observability.metrics import UsageLike

__all__ = [
    "SENSITIVE_NAMES",
    "configure_logging",
    "drop_sensitive_fields",
    "get_logger",
    "is_sensitive",
    "log_request",
    "request_log_fields",
]

# Field names (lower case, "-" read as "_") whose values may hold a key or a prompt.
SENSITIVE_NAMES = frozenset(
    {
        "api_key", "x_api_key", "authorization", "proxy_authorization", "cookie", "set_cookie",
        "password", "secret", "token", "access_token", "refresh_token", "bearer", "key",
        "messages", "message_content", "system", "prompt", "content", "text", "body", "raw_body",
        "headers", "tools", "tool_input", "input", "completion", "delta", "redacted", "original",
    }
)  # fmt: skip
# Names containing one of these are sensitive too (``upstream_api_key``, ``client_secret``).
_SENSITIVE_PARTS = re.compile(r"api_?key|secret|passw|authoriz|credential|cookie|private_key")
_DROPPED = "dropped_fields"


@functools.lru_cache(maxsize=4096)
def is_sensitive(name: str) -> bool:
    """Whether a field of this name must never be logged (``input_tokens`` is fine).

    Cached: a log line's field names come from a small set, so the check is one
    dict look-up per field on the hot path.
    """
    norm = name.lower().replace("-", "_")
    return (
        norm in SENSITIVE_NAMES
        or norm.endswith("_token")
        or _SENSITIVE_PARTS.search(norm) is not None
    )


def _scrub(fields: MutableMapping[str, Any], dropped: list[str], prefix: str = "") -> None:
    for name in [name for name in fields if is_sensitive(name)]:
        del fields[name]
        dropped.append(prefix + name)
    for name, value in fields.items():
        if isinstance(value, Mapping):
            inner = dict(value)
            _scrub(inner, dropped, f"{prefix}{name}.")
            fields[name] = inner


def drop_sensitive_fields(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """structlog processor: remove sensitive fields (nested too), naming what it removed."""
    dropped: list[str] = []
    _scrub(event_dict, dropped)
    if dropped:
        event_dict[_DROPPED] = dropped
    return event_dict


def _json_dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=repr).decode()


def _json_bytes(value: Any, **_: Any) -> bytes:
    return orjson.dumps(value, default=repr)


def configure_logging(level: str = "info", fmt: Literal["json", "console"] = "json") -> None:
    """Send structlog and standard-library logs to stderr, one event per line.

    The one piece of global configuration in the project; only the CLI calls it.
    structlog events (the request log) take the fast path: structlog's own
    filtering logger rendering straight to stderr's bytes with orjson, which costs
    a few microseconds a line. Standard-library records (aiohttp, warnings) go
    through the same processors by way of a ``ProcessorFormatter``.
    """
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        drop_sensitive_fields,
    ]
    logger_factory: Any
    if fmt == "json":
        renderer: Processor = structlog.processors.JSONRenderer(serializer=_json_bytes)
        logger_factory = structlog.BytesLoggerFactory(sys.stderr.buffer)
        foreign: Processor = structlog.processors.JSONRenderer(serializer=_json_dumps)
    else:
        renderer = foreign = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        logger_factory = structlog.WriteLoggerFactory(sys.stderr)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=logger_factory,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, foreign],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)


def get_logger(name: str) -> Any:
    """A structlog logger whose lines carry ``"logger": name``."""
    return structlog.get_logger().bind(logger=name)


class _Logger(Protocol):
    def info(self, event: str, **fields: Any) -> Any: ...
    def warning(self, event: str, **fields: Any) -> Any: ...


_LOGGABLE_MODEL = re.compile(r"claude-[a-z0-9.@-]{1,64}")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 2)


def request_log_fields(
    *,
    request_id: str,
    tenant: str | None,
    model: str | None,
    stream: bool,
    status: int,
    attempts: int,
    duration: float,
    error_type: str | None = None,
    overhead: float | None = None,
    ttft: float | None = None,
    upstream: float | None = None,
    queue_wait: float | None = None,
    usage: UsageLike | None = None,
) -> dict[str, Any]:
    """The fields of the per-request line; durations in seconds in, milliseconds out.

    The model is logged only if it looks like a model name (a client that puts
    its key in ``model`` must not find it in our logs).
    """
    fields: dict[str, Any] = {
        "request_id": request_id,
        "tenant": tenant,
        "model": model if model and _LOGGABLE_MODEL.fullmatch(model) else "unrecognised",
        "stream": stream,
        "status": status,
        "error_type": error_type,
        "attempts": attempts,
        "duration_ms": _ms(duration),
        "overhead_ms": _ms(overhead),
        "ttft_ms": _ms(ttft),
        "upstream_ms": _ms(upstream),
        "queue_ms": _ms(queue_wait),
    }
    if usage is not None:
        fields["input_tokens"] = usage.input_tokens
        fields["output_tokens"] = usage.output_tokens
        fields["cache_read_tokens"] = usage.cache_read_input_tokens
        fields["cache_write_tokens"] = usage.cache_creation_input_tokens
    return {name: value for name, value in fields.items() if value is not None}


def log_request(logger: _Logger, **fields: Any) -> None:
    """Write the one line of a finished request: ``request_log_fields(**fields)`` as ``request``.

    Server errors log at warning level, everything else at info.
    """
    line = request_log_fields(**fields)
    if line["status"] >= 500:
        logger.warning("request", **line)
    else:
        logger.info("request", **line)
