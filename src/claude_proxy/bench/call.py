"""One streamed Messages call, timed: time to the first token, to the end, and its usage."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from claude_proxy.document_cli import error_text
from claude_proxy.streaming.sse import Event, EventSplitter

__all__ = ["API_VERSION", "CallFailed", "Sample", "timed_call"]

API_VERSION = "2023-06-01"


class CallFailed(Exception):
    """The gateway or the API answered with an error; the message is theirs."""


@dataclass(frozen=True, slots=True)
class Sample:
    ttft: float  # seconds from sending the request to the first content delta
    latency: float  # seconds from sending the request to message_stop
    input_tokens: int  # all input, as the upstream counted it: uncached + read + written
    cache_read: int
    cache_write: int
    output_tokens: int
    stop_reason: str | None


@dataclass(slots=True)
class _Usage:
    input_tokens: int = 0
    cache_read: int = 0
    cache_write: int = 0
    output_tokens: int = 0
    stop_reason: str | None = None

    def update(self, usage: object) -> None:
        if not isinstance(usage, dict):
            return
        self.input_tokens = _int(usage.get("input_tokens"), self.input_tokens)
        self.cache_read = _int(usage.get("cache_read_input_tokens"), self.cache_read)
        self.cache_write = _int(usage.get("cache_creation_input_tokens"), self.cache_write)
        self.output_tokens = _int(usage.get("output_tokens"), self.output_tokens)


async def timed_call(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str]
) -> Sample:
    """POST a streamed request to ``url`` (a gateway's /v1/messages) and time it."""
    usage = _Usage()
    ttft: float | None = None
    splitter = EventSplitter()
    started = time.perf_counter()
    async with session.post(url, data=orjson.dumps(body), headers=headers) as response:
        if response.status != 200:
            raise CallFailed(error_text(response.status, await response.read()))
        async for chunk in response.content.iter_any():
            for event in splitter.feed(chunk):
                if event.name == "content_block_delta" and ttft is None:
                    ttft = time.perf_counter() - started
                elif event.name in ("message_start", "message_delta", "error"):
                    _read(event, usage)
                elif event.name == "message_stop":
                    latency = time.perf_counter() - started
                    return Sample(
                        ttft if ttft is not None else latency,
                        latency,
                        usage.input_tokens + usage.cache_read + usage.cache_write,
                        usage.cache_read,
                        usage.cache_write,
                        usage.output_tokens,
                        usage.stop_reason,
                    )
    raise CallFailed("the stream ended before message_stop")


def _read(event: Event, usage: _Usage) -> None:
    data = event.json()
    if event.name == "error":
        error = data.get("error")
        error = error if isinstance(error, dict) else {}
        raise CallFailed(f"{error.get('type', 'error')}: {error.get('message', '')}")
    if event.name == "message_start":
        message = data.get("message")
        if isinstance(message, dict):
            usage.update(message.get("usage"))
    else:
        usage.update(data.get("usage"))
        delta = data.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
            usage.stop_reason = delta["stop_reason"]


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
