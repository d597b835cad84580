"""Messages as JSON, one document per message, the form every backend stores them in.

Encoding each message once, on the way in, lets a store append without reading what it
holds, and hands every ``load`` a fresh copy (decoding is cheaper than ``deepcopy``): a
stage that edits the request in place can never reach into a store's or cache's data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from claude_proxy.jsonbytes import to_json

__all__ = ["decode_messages", "decode_value", "encode_messages", "encode_value"]


def encode_value(value: Any) -> bytes:
    """UTF-8 JSON, non-ASCII (Chinese) text as is, however deep (a tool's input may nest
    past orjson's writer); raises ``TypeError`` for non-JSON data."""
    return to_json(value)


def decode_value(data: bytes | str) -> Any:
    return orjson.loads(data)


def encode_messages(messages: Iterable[dict[str, Any]]) -> list[bytes]:
    return [to_json(message) for message in messages]


def decode_messages(parts: Iterable[bytes | str]) -> list[dict[str, Any]]:
    """The messages of JSON documents, parsed in one call (not one per message)."""
    joined: list[bytes] = []
    for part in parts:
        joined.append(part.encode() if isinstance(part, str) else part)
    messages: list[dict[str, Any]] = orjson.loads(b"[" + b",".join(joined) + b"]")
    return messages
