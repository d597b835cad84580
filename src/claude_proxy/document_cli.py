"""``claude-proxy document``: an instruction over a long document, through a gateway.

The document goes to the gateway's ``POST /v1/documents``, which splits it, runs one
call per chunk and combines their answers (map-reduce). Streamed (the default), the
gateway first reports its progress (``document_progress`` events: ``split``,
``chunk_started``, ``chunk_done``, ``reduce_started``, ``done``), shown here as a tqdm
bar on stderr, then streams the final answer as a normal Messages stream, whose text
goes to stdout as it arrives. stdout only ever holds the answer (or, with ``--json``,
the response body), so it can be piped.

Exit status: 0 answered; 1 the gateway, the API or the connection failed (the
Anthropic error's ``type: message`` on stderr); 2 the document could not be read;
3 answered, but some parts of the document could not be processed (named on stderr).

``--demo`` needs no gateway: the simulator and a gateway start in this process on free
loopback ports, the document goes through them, and both stop.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import aiohttp
import click
import orjson

from claude_proxy.server import run_event_loop
from claude_proxy.streaming.sse import Event, EventSplitter

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_URL",
    "EXIT_ERROR",
    "EXIT_INCOMPLETE",
    "EXIT_INPUT",
    "AnswerStream",
    "DocumentRequest",
    "Progress",
    "StreamFailed",
    "error_text",
    "read_document",
    "run_document",
]

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_MODEL = "claude-sonnet-4-6"
API_VERSION = "2023-06-01"

EXIT_ERROR = 1  # the gateway, the API or the connection failed
EXIT_INPUT = 2  # the document could not be read (click's usage errors are 2 too)
EXIT_INCOMPLETE = 3  # answered, but parts of the document are missing from the answer

# The gateway's default overlap (200 tokens of 4000) is 5 % of a chunk: a smaller
# --chunk-tokens without --overlap-tokens keeps that share instead of an overlap the
# gateway refuses (it must stay under half a chunk).
_DEFAULT_OVERLAP = 200
_OVERLAP_SHARE = 20


class InputError(click.ClickException):
    """The document could not be read: one line on stderr, exit status 2."""

    exit_code = EXIT_INPUT


class StreamFailed(Exception):
    """The gateway reported an error (an HTTP error or an ``error`` event)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


def read_document(source: str) -> str:
    """The document in FILE, or on stdin for ``-``, as UTF-8 text (a BOM is dropped)."""
    name = "stdin" if source == "-" else source
    try:
        if source == "-":
            if sys.stdin is None:  # started without one
                raise InputError("no standard input to read the document from")
            raw = sys.stdin.buffer.read()
        else:
            with open(source, "rb") as file:
                raw = file.read()
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "convert it first, e.g. with iconv"
        ) from None
    if not text.strip():
        raise InputError(f"{name} is empty")
    return text


@dataclass(frozen=True, slots=True)
class DocumentRequest:
    """What to ask of ``POST /v1/documents``; None leaves a field to the gateway."""

    instruction: str
    model: str = DEFAULT_MODEL
    chunk_tokens: int | None = None
    overlap_tokens: int | None = None
    max_tokens: int | None = None

    def body(self, document: str, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "document": document,
            "instruction": self.instruction,
            "stream": stream,
        }
        overlap = self.overlap_tokens
        if self.chunk_tokens is not None:
            body["chunk_tokens"] = self.chunk_tokens
            if overlap is None:
                overlap = min(_DEFAULT_OVERLAP, self.chunk_tokens // _OVERLAP_SHARE)
        if overlap is not None:
            body["overlap_tokens"] = overlap
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        return body


class Progress:
    """The gateway's ``document_progress`` events, counted and shown as a tqdm bar.

    The bar appears when the document has been split (its total is the number of
    chunks), counts chunks done, turns to ``reduce`` when partial answers are being
    combined, and is closed (left on screen) before the answer's text is printed.
    """

    def __init__(self, file: TextIO | None, *, enabled: bool) -> None:
        self._file = file
        self._enabled = enabled
        self._bar: tqdm[NoReturn] | None = None
        self.chunks: int | None = None
        self.done = 0
        self.running = 0
        self.failed: list[int] = []
        self.stage = "split"
        self.reduce_level = 0
        self.missing: list[int] | None = None  # as the ``done`` event names them

    def on_event(self, data: dict[str, Any]) -> None:
        stage = data.get("stage")
        if stage == "split":
            self.chunks = _int(data.get("chunks"))
            self.stage = "map"
            self._open()
        elif stage == "chunk_started":
            self.running += 1
            self._refresh()
        elif stage == "chunk_done":
            self.running = max(self.running - 1, 0)
            self.done += 1
            if data.get("ok") is False:
                self.failed.append(_int(data.get("index")))
            if self._bar is not None:
                self._bar.update(1)
            self._refresh()
        elif stage == "reduce_started":
            self.stage = "reduce"
            self.reduce_level = _int(data.get("level"), 1)
            self._refresh()
        elif stage == "done":
            missing = data.get("missing_chunks")
            if isinstance(missing, list):
                self.missing = sorted(_int(index) for index in missing)
            if self.chunks is None:
                self.chunks = _int(data.get("chunks"))
            if self._bar is not None and self._bar.total:
                # One chunk is answered by the final call itself: no chunk events.
                self._bar.update(self._bar.total - self._bar.n)
            self.close()

    @property
    def missing_chunks(self) -> list[int]:
        """The parts left out of the answer: the ``done`` event's list, else the failures."""
        return self.missing if self.missing is not None else sorted(self.failed)

    @property
    def description(self) -> str:
        if self.stage == "reduce" and self.reduce_level > 1:
            return f"reduce {self.reduce_level}"
        return self.stage

    @property
    def postfix(self) -> str:
        notes = []
        if self.stage == "map" and self.running:
            notes.append(f"{self.running} running")
        if self.failed:
            notes.append(f"{len(self.failed)} failed")
        return ", ".join(notes)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._enabled = False  # never reopened: the answer's text comes next

    def _open(self) -> None:
        if not self._enabled or self._bar is not None:
            return
        from tqdm import tqdm  # only when a bar is shown: the other commands need not load it

        self._bar = tqdm(
            total=self.chunks,
            desc=self.description,
            unit="chunk",
            file=self._file,
            dynamic_ncols=True,
            leave=True,
        )

    def _refresh(self) -> None:
        if self._bar is not None:
            self._bar.set_description_str(self.description, refresh=False)
            self._bar.set_postfix_str(self.postfix, refresh=True)


@dataclass
class AnswerStream:
    """The events of a streamed document answer, sans I/O: ``feed`` returns text to print.

    Raises ``StreamFailed`` on an ``error`` event. ``finished`` once ``message_stop``
    has come; a stream that ends before that was cut short.
    """

    progress: Progress
    finished: bool = False
    printed: str = ""  # the end of the text printed so far (its last delta)
    _started: bool = False

    def feed(self, event: Event) -> str:
        if event.name == "document_progress":
            self.progress.on_event(event.json())
            return ""
        if event.name == "error":
            error = event.json().get("error")
            error = error if isinstance(error, dict) else {}
            raise StreamFailed(
                str(error.get("type", "api_error")),
                str(error.get("message", "The gateway reported an error.")),
            )
        if event.name == "message_stop":
            self.finished = True
            return ""
        if event.name in ("message_start", "content_block_start") and not self._started:
            self._started = True
            self.progress.close()  # the bar stays above; the answer's lines go below it
            return ""
        if event.name == "content_block_delta":
            delta = event.json().get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta":
                text = str(delta.get("text", ""))
                if text:
                    if not self._started:
                        self._started = True
                        self.progress.close()
                    self.printed = text
                return text
        return ""


def error_text(status: int, body: bytes) -> str:
    """An HTTP error's Anthropic ``type: message``, or what can be said of a foreign body."""
    try:
        error = orjson.loads(body)["error"]
        return f"{error['type']}: {error['message']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        snippet = body[:300].decode("utf-8", "replace").strip()
        return f"HTTP {status}" + (f": {snippet}" if snippet else "")


def run_document(
    request: DocumentRequest,
    document: str,
    *,
    url: str = DEFAULT_URL,
    api_key: str = "anything",
    json_output: bool = False,
    progress: bool | None = None,
    demo: bool = False,
    speed: float = 1.0,
) -> int:
    """Run the document through the gateway at ``url`` (or an in-process one with
    ``demo``); print the answer on stdout; return the exit status.

    ``progress``: show the bar (None: when stderr is a terminal; never with JSON).
    """
    out, err = sys.stdout, sys.stderr
    if json_output:
        show = False
    elif progress is None:
        show = err.isatty()
    else:
        show = progress

    return run_event_loop(
        _with_gateway(
            url,
            demo,
            speed,
            lambda base: _send(base, request, document, api_key, json_output, show, out, err),
        )
    )


async def _with_gateway(
    url: str, demo: bool, speed: float, run: Callable[[str], Awaitable[int]]
) -> int:
    if not demo:
        return await run(url)
    from pydantic import SecretStr

    from claude_proxy.app import create_app
    from claude_proxy.config import Settings, UpstreamSettings
    from claude_proxy.demo import DEMO_UPSTREAM_KEY
    from claude_proxy.server import start_server
    from claude_proxy.sim import SimSettings, create_sim_app

    sim_app = create_sim_app(SimSettings(api_key=DEMO_UPSTREAM_KEY, speed=speed))
    sim = await start_server(sim_app, "127.0.0.1", 0, shutdown_timeout=0.5)
    try:
        upstream = UpstreamSettings(
            name="simulator", base_url=sim.url, api_key=SecretStr(DEMO_UPSTREAM_KEY)
        )
        settings = Settings(upstreams=[upstream])
        gateway = await start_server(
            create_app(settings),
            "127.0.0.1",
            0,
            shutdown_timeout=0.5,
            clients=settings.clients,
        )
        try:
            return await run(gateway.url)
        finally:
            await gateway.stop()
    finally:
        await sim.stop()


async def _send(
    base_url: str,
    request: DocumentRequest,
    document: str,
    api_key: str,
    json_output: bool,
    show_progress: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    headers = {
        "x-api-key": api_key,
        "anthropic-version": API_VERSION,
        "content-type": "application/json",
    }
    target = base_url.rstrip("/") + "/v1/documents"
    body = orjson.dumps(request.body(document, stream=not json_output))
    # No read timeout: a long document's JSON answer comes only when all of it is done,
    # and a stream may wait long between progress events while big chunks are answered.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    progress = Progress(err, enabled=show_progress)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(target, data=body, headers=headers) as response,
        ):
            if response.status != 200:
                _fail(err, error_text(response.status, await response.read()))
                return EXIT_ERROR
            if json_output:
                return _print_json(await response.read(), out, err)
            return await _print_stream(response, progress, out, err)
    except aiohttp.ClientConnectorError as exc:
        _fail(err, f"cannot reach the gateway at {base_url} ({exc.os_error}); is it running?")
        return EXIT_ERROR
    except aiohttp.ClientError as exc:
        _fail(err, f"the connection to the gateway failed: {type(exc).__name__}: {exc}")
        return EXIT_ERROR
    except BrokenPipeError:
        # Whatever read stdout stopped (``| head``): stop quietly, as other tools do.
        _silence(out)
        return EXIT_ERROR
    finally:
        progress.close()


def _print_json(raw: bytes, out: TextIO, err: TextIO) -> int:
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        _fail(err, "the gateway's answer is not JSON: " + raw[:200].decode("utf-8", "replace"))
        return EXIT_ERROR
    text = raw.decode("utf-8")
    out.write(text if text.endswith("\n") else text + "\n")
    out.flush()
    summary = answer.get("document") if isinstance(answer, dict) else None
    if not isinstance(summary, dict):
        return 0
    missing = summary.get("missing_chunks")
    if not isinstance(missing, list) or not missing:
        return 0
    _warn_missing(err, sorted(_int(index) for index in missing), summary.get("chunks"))
    return EXIT_INCOMPLETE


async def _print_stream(
    response: aiohttp.ClientResponse, progress: Progress, out: TextIO, err: TextIO
) -> int:
    stream = AnswerStream(progress)
    splitter = EventSplitter()
    try:
        async for data in response.content.iter_any():
            for event in splitter.feed(data):
                text = stream.feed(event)
                if text:
                    out.write(text)
                    out.flush()
    except StreamFailed as exc:
        progress.close()
        _end_line(stream, out)
        _fail(err, str(exc))
        return EXIT_ERROR
    progress.close()
    _end_line(stream, out)
    if not stream.finished:
        _fail(err, "the gateway's stream ended before the answer was complete")
        return EXIT_ERROR
    if progress.missing_chunks:
        _warn_missing(err, progress.missing_chunks, progress.chunks)
        return EXIT_INCOMPLETE
    return 0


def _end_line(stream: AnswerStream, out: TextIO) -> None:
    """The answer's trailing newline (unless it has one, or an error came before any text)."""
    if stream.printed.endswith("\n") or not (stream.printed or stream.finished):
        return
    out.write("\n")
    out.flush()


def _warn_missing(err: TextIO, missing: list[int], chunks: object) -> None:
    total = f" of {chunks}" if isinstance(chunks, int) else ""
    listed = ", ".join(str(index) for index in missing)
    err.write(
        f"claude-proxy: warning: the answer is incomplete: {len(missing)}{total} parts of "
        f"the document could not be processed (parts {listed}, numbered from 0).\n"
    )
    err.flush()


def _fail(err: TextIO, message: str) -> None:
    err.write(f"claude-proxy: error: {message}\n")
    err.flush()


def _silence(out: TextIO) -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises nothing more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        pass


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
