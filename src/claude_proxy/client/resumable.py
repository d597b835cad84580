"""Stream a Messages reply through the gateway, resuming by itself after a dropped connection.

The gateway's contract: a streamed ``POST /v1/messages`` answers with an
``x-proxy-stream-id`` header and an ``id:`` on every event; ``GET /v1/streams/{id}``
with ``Last-Event-ID`` (and the same auth headers) answers with exactly the events after
that id, then follows the rest live. When the connection drops before ``message_stop``,
this helper calls the resume endpoint with the last id it saw, retrying with backoff,
and carries on; application code sees one uninterrupted stream. Without the header
(talking to the API directly) a dropped connection raises ``StreamInterrupted``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, Self

import anthropic
import httpx2
from anthropic.types import Message, Usage

from claude_proxy.client.snapshot import Snapshot
from claude_proxy.streaming.sse import Event, EventSplitter

__all__ = ["STREAM_ID_HEADER", "ResumableStream", "StreamError", "StreamInterrupted", "stream_text"]

STREAM_ID_HEADER = "x-proxy-stream-id"
# What a dropped connection looks like: raised by the body iterator, or by the SDK on connect.
_DROPPED = (httpx2.TransportError, anthropic.APIConnectionError)


class StreamError(Exception):
    """The stream carried an ``error`` event: the reply failed and will not go on."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


class StreamInterrupted(Exception):
    """The connection dropped and the stream could not be resumed (see ``__cause__``)."""


class ResumableStream:
    """One streamed Messages call that resumes itself; use it as an async context manager.

    Iterating the stream itself yields every event as a dict (``{"type": ...}``), in order,
    each exactly once across resumes. ``max_retries`` bounds consecutive failed resume
    attempts (any event received resets the count); the waits double from ``backoff`` up
    to ``max_backoff``, with jitter. A 404 (expired) or 403 from the resume endpoint is
    raised as the SDK's ``NotFoundError`` / ``PermissionDeniedError``.
    """

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        params: Mapping[str, Any],
        *,
        max_retries: int = 5,
        backoff: float = 0.25,
        max_backoff: float = 4.0,
    ) -> None:
        self._client = client
        self._params = {key: value for key, value in params.items() if key != "stream"}
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.stream_id: str | None = None
        self.last_event_id: str | None = None
        self.resumes = 0
        self._snapshot = Snapshot()
        self._response: httpx2.Response | None = None
        self._events: AsyncIterator[dict[str, Any]] | None = None

    @property
    def message(self) -> Message | None:
        """The message as received so far; whole once the stream has ended."""
        return self._snapshot.message()

    @property
    def usage(self) -> Usage | None:
        message = self.message
        return None if message is None else message.usage

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        if self._events is None:
            self._events = self._run()
        return self._events

    @property
    async def text_stream(self) -> AsyncIterator[str]:
        async for event in self:
            if event.get("type") == "content_block_delta":
                delta = event.get("delta") or {}
                if delta.get("type") == "text_delta":
                    yield str(delta.get("text", ""))

    async def get_final_message(self) -> Message:
        """Read to the end (resuming as needed) and return the whole message."""
        async for _ in self:
            pass
        message = self.message
        if message is None:
            raise StreamError("api_error", "the stream ended without a message")
        return message

    async def close(self) -> None:
        if self._response is not None:
            await self._response.aclose()
            self._response = None

    async def _run(self) -> AsyncIterator[dict[str, Any]]:
        self._response = await self._open()
        failures = 0
        while True:
            dropped: BaseException | None = None
            try:
                async for event in self._read(self._response):
                    failures = 0
                    payload = event.json()
                    kind = payload.get("type", event.name)
                    if kind == "error":
                        error = payload.get("error") or {}
                        raise StreamError(str(error.get("type")), str(error.get("message")))
                    self._snapshot.feed(payload)
                    yield payload
                    if kind == "message_stop":
                        return
            except _DROPPED as exc:
                dropped = exc
            finally:
                await self.close()
            if self.stream_id is None:
                raise StreamInterrupted(
                    "the connection dropped and the stream is not resumable"
                ) from dropped
            self._response, failures = await self._resume(failures, dropped)

    async def _read(self, response: httpx2.Response) -> AsyncIterator[Event]:
        splitter = EventSplitter()
        async for chunk in response.aiter_bytes():
            for event in splitter.feed(chunk):
                event_id = _event_id(event.raw)
                if event_id is not None:
                    self.last_event_id = event_id
                yield event

    async def _open(self) -> httpx2.Response:
        messages = self._client.messages.with_streaming_response
        manager = messages.create(**self._params, stream=True)
        response: httpx2.Response = (await manager.__aenter__()).http_response
        self.stream_id = response.headers.get(STREAM_ID_HEADER)
        return response

    async def _resume(
        self, failures: int, dropped: BaseException | None
    ) -> tuple[httpx2.Response, int]:
        """Reopen the stream after the last event seen; (response, consecutive failures)."""
        while True:
            failures += 1
            if failures > self.max_retries:
                raise StreamInterrupted(
                    f"the stream could not be resumed in {self.max_retries} tries"
                ) from dropped
            delay = min(self.max_backoff, self.backoff * 2 ** (failures - 1))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            try:
                response = await self._get_resume()
            except (*_DROPPED, anthropic.InternalServerError, anthropic.RateLimitError) as exc:
                dropped = exc
                continue
            self.resumes += 1
            return response, failures

    async def _get_resume(self) -> httpx2.Response:
        headers = dict(self._params.get("extra_headers") or {})
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        response: httpx2.Response = await self._client.get(
            f"/v1/streams/{self.stream_id}",
            cast_to=httpx2.Response,
            options={"headers": headers, "max_retries": 0},
            stream=True,
            stream_cls=None,
        )
        return response


async def stream_text(
    client: anthropic.AsyncAnthropic, *, max_retries: int = 5, **params: Any
) -> AsyncIterator[str]:
    """The reply's text deltas, one uninterrupted stream however often the connection drops."""
    async with ResumableStream(client, params, max_retries=max_retries) as stream:
        async for text in stream.text_stream:
            yield text


def _event_id(raw: bytes) -> str | None:
    for line in raw.replace(b"\r\n", b"\n").split(b"\n"):
        if line.startswith(b"id:"):
            return line[3:].lstrip(b" ").decode("utf-8", "replace")
        if not line:
            break
    return None
