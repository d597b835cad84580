"""JSON bytes of any value a request body parses to, however deeply it nests.

orjson reads JSON nested up to 1,024 levels but writes only 254: a tool schema or a
``tool_use.input`` nested deeper parses, then raises "Recursion limit reached" wherever
the gateway encodes it again (a changed body, a token estimate, a stored session turn,
a cache key). ``to_json`` takes orjson's fast path and, when it refuses, writes the value
with an explicit stack instead of recursion: the same bytes orjson would write (compact,
UTF-8, keys in order or sorted), at Python speed, for the rare body that needs it.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["to_json"]


class _Raw:
    """Bytes to write as they are (punctuation and keys), never data."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


_OPEN_OBJECT, _CLOSE_OBJECT = _Raw(b"{"), _Raw(b"}")
_OPEN_ARRAY, _CLOSE_ARRAY = _Raw(b"["), _Raw(b"]")
_COMMA = _Raw(b",")


def to_json(value: Any, *, sort_keys: bool = False) -> bytes:
    """``value`` as compact UTF-8 JSON; raises ``TypeError`` for what JSON cannot hold
    (as ``orjson.dumps`` does)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except orjson.JSONEncodeError:
        return _deep(value, sort_keys)


def _key(entry: tuple[Any, Any]) -> Any:
    return entry[0]


def _deep(value: Any, sort_keys: bool) -> bytes:
    out: list[bytes] = []
    stack: list[Any] = [value]  # popped from the end: pushed in reverse order
    while stack:
        item = stack.pop()
        if isinstance(item, _Raw):
            out.append(item.data)
        elif isinstance(item, dict):
            entries = sorted(item.items(), key=_key) if sort_keys else item.items()
            stack.append(_CLOSE_OBJECT)
            pending: list[Any] = []
            for key, inner in entries:
                if not isinstance(key, str):
                    raise TypeError("Dict key must be str")
                pending.append(_Raw((b"," if pending else b"") + orjson.dumps(key) + b":"))
                pending.append(inner)
            stack.extend(reversed(pending))
            stack.append(_OPEN_OBJECT)
        elif isinstance(item, list | tuple):
            stack.append(_CLOSE_ARRAY)
            for position in range(len(item) - 1, -1, -1):
                stack.append(item[position])
                if position:
                    stack.append(_COMMA)
            stack.append(_OPEN_ARRAY)
        else:
            out.append(orjson.dumps(item))
    return b"".join(out)
