"""Reading SSE in tests: split a raw event stream into (event, data) pairs."""

from __future__ import annotations

from typing import Any

import orjson


def parse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = "", b""
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data += line[5:].strip()
        if name or data:
            events.append((name, orjson.loads(data) if data else {}))
    return events


def without_ids(value: Any) -> Any:
    """Drop per-call ids (message and tool ids) so two calls can be compared."""
    if isinstance(value, dict):
        return {k: without_ids(v) for k, v in value.items() if k not in ("id", "request_id")}
    if isinstance(value, list | tuple):
        return [without_ids(v) for v in value]
    return value
