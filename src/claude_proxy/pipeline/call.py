"""The Call: one client request as it travels the pipeline, built in exactly one place.

Every entry (HTTP JSON and SSE, each request on a WebSocket, a resume, a relayed read,
an internal sub-call) becomes a ``Call`` through ``Call.create``. Stages read
``call.body`` and change it only through ``call.set_body``, so what goes upstream is
always the body as the stages left it: the client's original bytes when nothing
changed (unknown fields and key order untouched, no encode on the hot path), one
re-encode when something did.
"""

from __future__ import annotations

import enum
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import orjson
from multidict import MultiMapping

from claude_proxy.errors import InvalidRequest
from claude_proxy.jsonbytes import to_json
from claude_proxy.upstream.forwarder import AttemptLog, UpstreamReply, UpstreamRequest

if TYPE_CHECKING:
    from claude_proxy.streaming.generation import Generation
    from claude_proxy.tenancy import Tenant

__all__ = ["BodyReader", "Call", "CallKey", "Route", "refuse_duplicate_keys"]

# The top-level keys the gateway acts on (as JSON strings in the raw body).
_ACTED_ON = (b'"model"', b'"stream"', b'"max_tokens"')

T = TypeVar("T")

BodyReader = Callable[[], Awaitable[bytes]]
"""Reads the request body from the client (HTTP ingress); raises GatewayErrors."""


class Route(enum.Enum):
    """Which entry a call came in by; each route has its own chain of stages."""

    MESSAGES = "messages"  # POST /v1/messages: JSON, SSE, and requests on /v1/ws
    COUNT_TOKENS = "count_tokens"  # POST /v1/messages/count_tokens
    # Every other /v1 route (models, batches, files, what the API adds later), relayed
    # as it is: not parsed, not admitted, streamed both ways.
    RELAY = "relay"
    RESUME = "resume"  # GET /v1/streams/{id}
    # POST /v1/documents: not admitted itself; its map and reduce sub-calls are.
    DOCUMENTS = "documents"
    SESSIONS = "sessions"  # /v1/sessions: list, read, delete stored conversations
    WEBSOCKET = "websocket"  # the upgrade of /v1/ws (its requests are MESSAGES calls)

    @property
    def has_body(self) -> bool:
        return self in (Route.MESSAGES, Route.COUNT_TOKENS, Route.DOCUMENTS)

    @property
    def admitted(self) -> bool:
        """Whether calls on this route wait for a slot in the tenant's window."""
        return self is Route.MESSAGES


class CallKey(Generic[T]):
    """A typed key for what a stage keeps on a call (``call.state[key]``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<CallKey {self.name}>"


@dataclass(slots=True, eq=False)
class Call:
    """One request through the stages; see the module docstring for the body rule."""

    request_id: str
    route: Route
    method: str
    path: str  # with the query string, as sent upstream
    headers: MultiMapping[str]
    peer: str | None
    started: float  # perf_counter() when the request arrived
    stream: bool = False
    tenant: Tenant | None = None
    max_continuations: int = 0  # times an answer cut at max_tokens is continued
    model: str | None = None  # the body's model, when it names one
    # What happened to it (filled in on the way; read by the record and the release).
    attempts: AttemptLog | None = None
    queue_wait: float | None = None  # seconds waited for admission
    usage: dict[str, Any] | None = None  # the answer's usage, once known
    overhead: float | None = None  # the gateway's own seconds, once the answer is sent
    generation: Generation | None = None  # a stream's: time to first token, how it ended
    # The error type of an answer that failed after its status was sent (a relayed body).
    answer_error: str | None = None
    # An answer a stage gives in place of the upstream's (a response cache's hit): a 200
    # whose body is a JSON Message, or a stream's SSE bytes. The upstream-call service
    # returns it as the upstream's, without admission or an upstream call.
    prepared: UpstreamReply | None = None
    # Set by an entry that writes the answer itself: the upstream-call service leaves a
    # whole answer's admission settle here (the slot's release, with the usage), and the
    # entry has it run once the answer is out, so that no client waits on the release.
    after_reply: list[Callable[[], Awaitable[None]]] | None = None
    state: dict[CallKey[Any], Any] = field(default_factory=dict)
    read_body: BodyReader | None = None
    _raw: bytes | None = None
    _body: dict[str, Any] | None = None
    _changed: bool = False
    _subcalls: itertools.count[int] | None = None

    @classmethod
    def create(
        cls,
        request_id: str,
        route: Route,
        *,
        path: str,
        headers: MultiMapping[str],
        method: str = "POST",
        peer: str | None = None,
        raw_body: bytes | None = None,
        body: dict[str, Any] | None = None,
        read_body: BodyReader | None = None,
        started: float | None = None,
    ) -> Call:
        """The one constructor. Pass the body as bytes (parsed here), as an object, or
        as a reader the body stage calls later (HTTP, after authentication)."""
        call = cls(
            request_id=request_id,
            route=route,
            method=method,
            path=path,
            headers=headers,
            peer=peer,
            started=time.perf_counter() if started is None else started,
            read_body=read_body,
        )
        if raw_body is not None:
            call.load_body(raw_body)
        elif body is not None:
            call.set_body(body)
        return call

    # -- the body -------------------------------------------------------------------

    @property
    def has_body(self) -> bool:
        return self._body is not None

    @property
    def body(self) -> Mapping[str, Any]:
        """The request body (read-only: change it with ``set_body``)."""
        return self._body if self._body is not None else {}

    def load_body(self, raw: bytes, *, acted_on: tuple[bytes, ...] = _ACTED_ON) -> None:
        """Parse the client's bytes; they go upstream as they are unless a stage changes them.

        ``acted_on``: the keys (as JSON strings) a stage reads from the top-level object;
        one of them sent twice is refused. A body whose keys of interest are nested (a
        batch's ``params``) passes ``()`` and checks its own."""
        self._raw = raw
        self._body = body = _parse_object(raw, acted_on)
        self._changed = False
        self.stream = _stream_flag(body)
        self.model = _model_of(body)

    def set_body(self, body: dict[str, Any]) -> None:
        """Replace the body; the upstream gets it re-encoded once."""
        self._body = body
        self._changed = True
        self.stream = _stream_flag(body)
        self.model = _model_of(body)

    @property
    def body_changed(self) -> bool:
        return self._changed

    @property
    def upstream_body(self) -> bytes | None:
        """The bytes to send: the original when unchanged, else one encode (kept)."""
        if self._changed or self._raw is None:
            if self._body is None:
                return None
            self._raw = to_json(self._body)  # a body nested past orjson's writer too
            self._changed = False
        return self._raw

    # -- upstream -------------------------------------------------------------------

    def upstream_request(self) -> UpstreamRequest:
        return UpstreamRequest(self.request_id, self.method, self.path, self.headers)

    def subcall(self, body: dict[str, Any], headers: MultiMapping[str] | None = None) -> Call:
        """A call the gateway makes on this one's behalf (a map call, a summary...).

        Same tenant, headers (unless given) and credentials; its own request id,
        attempts and usage.
        It goes through the upstream-call service like any call, so through admission.
        """
        if self._subcalls is None:
            self._subcalls = itertools.count(1)
        child = Call.create(
            f"{self.request_id}.{next(self._subcalls)}",
            Route.MESSAGES,
            path="/v1/messages",
            headers=self.headers if headers is None else headers,
            peer=self.peer,
            body=body,
        )
        child.tenant = self.tenant
        return child

    # -- timing ---------------------------------------------------------------------

    def mark_overhead(self) -> float:
        """The gateway's own time so far: total minus upstream, backoff and queue waits."""
        elapsed = time.perf_counter() - self.started - (self.queue_wait or 0.0)
        log = self.attempts
        if log is not None:
            elapsed -= log.upstream_seconds + log.backoff_seconds
        self.overhead = max(elapsed, 0.0)
        return self.overhead


def _model_of(body: Mapping[str, Any]) -> str | None:
    model = body.get("model")
    return model if isinstance(model, str) else None


def _stream_flag(body: Mapping[str, Any]) -> bool:
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream: Input should be a valid boolean")
    return stream


def _parse_object(raw: bytes, acted_on: tuple[bytes, ...]) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "UTF-8" in str(exc):
            raise InvalidRequest("Request body is not valid UTF-8.") from None
        raise InvalidRequest(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object.")
    # A key sent twice is read here as its last value, and perhaps as its first by the
    # API: a body authorised for one model could then run on another. The bytes of a key
    # the gateway acts on appearing twice is rare enough to check the slow way.
    if any(raw.count(key) > 1 for key in acted_on):
        refuse_duplicate_keys(raw)
    return body


def refuse_duplicate_keys(raw: bytes) -> None:
    """Raise ``InvalidRequest`` if any object in the JSON ``raw`` has a key twice (slow:
    a Python hook per object)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                raise InvalidRequest(
                    f"Request body has the key {key!r} twice in one object; send each once."
                )
            seen.add(key)
        return dict(items)

    json.loads(raw, object_pairs_hook=pairs)
