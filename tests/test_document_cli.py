"""``claude-proxy document``: against a fake of the endpoint's contract, then end to end.

The fake server emits exactly what ``POST /v1/documents`` promises (progress events in
either position of ``done``, errors before and during the stream), so the command's
handling of each case is pinned down; the end-to-end tests run the real gateway and the
simulator, in-process (``--demo``) and as a process of their own.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from claude_proxy.cli import main
from claude_proxy.config import RetrySettings
from claude_proxy.document_cli import AnswerStream, DocumentRequest, Progress, StreamFailed
from claude_proxy.server import RunningServer, start_server
from claude_proxy.streaming.sse import EventSplitter, encode_event
from tests.conftest import StartGateway, StartSim
from tests.documents.test_split import mixed_document

CLI = [sys.executable, "-m", "claude_proxy"]
# The outside environment must not choose the gateway or the key of these tests.
CLEAN_ENV: dict[str, str | None] = {"CLAUDE_PROXY_URL": None, "ANTHROPIC_API_KEY": None}
DOC_TEXT = "第一节 Section one.\n\nSome English, 一些中文。\n" * 20


def progress(stage: str, **fields: Any) -> bytes:
    return encode_event(
        "document_progress", {"type": "document_progress", "stage": stage, **fields}
    )


def message_events(*texts: str, done: bytes = b"") -> list[bytes]:
    """A Messages stream of ``texts``; ``done`` (a progress event) just before message_stop."""
    message: dict[str, Any] = {
        "id": "msg_doc",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 10, "output_tokens": 1},
    }
    events = [
        encode_event("message_start", {"type": "message_start", "message": message}),
        encode_event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
        ),
        encode_event("ping", {"type": "ping"}),
    ]
    events += [
        encode_event(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}},
        )
        for t in texts
    ]
    events += [
        encode_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        encode_event(
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {}},
        ),
        done,
        encode_event("message_stop", {"type": "message_stop"}),
    ]
    return [event for event in events if event]


def mapped(chunks: int, failed: Sequence[int] = ()) -> list[bytes]:
    """split, every chunk started and done (``failed`` not ok), one reduce."""
    events = [progress("split", chunks=chunks)]
    events += [progress("chunk_started", index=i, chunks=chunks) for i in range(chunks)]
    events += [
        progress("chunk_done", index=i, chunks=chunks, ok=i not in failed) for i in range(chunks)
    ]
    events.append(progress("reduce_started", level=1, inputs=chunks - len(failed)))
    return events


def done(chunks: int, missing: Sequence[int] = ()) -> bytes:
    return progress("done", chunks=chunks, missing_chunks=list(missing), calls=chunks + 1)


def error_event(error_type: str, message: str) -> bytes:
    return encode_event(
        "error", {"type": "error", "error": {"type": error_type, "message": message}}
    )


def json_answer(text: str, chunks: int = 3, missing: Sequence[int] = ()) -> dict[str, Any]:
    return {
        "id": "msg_doc",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 300, "output_tokens": 40},
        "document": {"chunks": chunks, "missing_chunks": list(missing), "calls": chunks + 1},
    }


@dataclass
class Fake:
    """The endpoint's stand-in: answers each request with ``events`` (SSE, written one
    event at a time) or, when ``status``/``body`` are set, with that body."""

    server: RunningServer | None = None
    events: list[bytes] = field(default_factory=list)
    status: int = 200
    body: bytes | None = None
    content_type: str = "application/json"
    requests: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((dict(request.headers), await request.json()))
        if self.body is not None:
            return web.Response(status=self.status, body=self.body, content_type=self.content_type)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for event in self.events:
            await response.write(event)
            await asyncio.sleep(0)
        await response.write_eof()
        return response


@pytest.fixture
async def fake() -> AsyncIterator[Fake]:
    fake = Fake()
    app = web.Application()
    app.router.add_post("/v1/documents", fake.handle)
    fake.server = await start_server(app, "127.0.0.1", 0, shutdown_timeout=0.1)
    yield fake
    await fake.server.stop()


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    path = tmp_path / "doc.txt"
    path.write_text(DOC_TEXT, encoding="utf-8")
    return path


async def invoke(
    *args: str, input: bytes | None = None, env: Mapping[str, str | None] | None = None
) -> Result:
    """The command in a thread (it runs its own event loop; the servers run on this one)."""
    runner = CliRunner()
    return await asyncio.to_thread(
        runner.invoke,
        main,
        ["document", *args],
        input=input,
        env={**CLEAN_ENV, **(env or {})},
        catch_exceptions=False,
    )


# -- streamed (the default) -----------------------------------------------------------


async def test_the_answer_streams_to_stdout_and_progress_to_stderr(fake: Fake, doc: Path) -> None:
    fake.events = [*mapped(3), done(3), *message_events("Hello ", "世界")]
    result = await invoke(str(doc), "-i", "Summarize", "--url", fake.url, "--progress")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Hello 世界\n"  # stdout holds the answer alone
    # The bar counted the three chunks, then showed the reduce.
    assert "3/3" in result.stderr and "reduce" in result.stderr
    headers, body = fake.requests[0]
    assert headers["x-api-key"] == "anything" and headers["anthropic-version"] == "2023-06-01"
    assert body == {
        "model": "claude-sonnet-4-6",
        "document": DOC_TEXT,
        "instruction": "Summarize",
        "stream": True,
    }  # chunking and max_tokens are left to the gateway's defaults


async def test_no_bar_when_stderr_is_not_a_terminal(fake: Fake, doc: Path) -> None:
    fake.events = [*mapped(3), done(3), *message_events("An answer ending in a newline\n")]
    result = await invoke(str(doc), "-i", "Summarize", "--url", fake.url)
    assert result.exit_code == 0
    assert result.stderr == ""
    assert result.stdout == "An answer ending in a newline\n"  # not a second newline


async def test_missing_chunks_are_named_and_exit_3(fake: Fake, doc: Path) -> None:
    # ``done`` just before message_stop this time: the contract allows either position.
    fake.events = [*mapped(4, failed=[1, 3]), *message_events("Partial.", done=done(4, [1, 3]))]
    result = await invoke(str(doc), "-i", "Summarize", "--url", fake.url, "--progress")
    assert result.exit_code == 3
    assert result.stdout == "Partial.\n"
    assert "2 of 4 parts of the document could not be processed (parts 1, 3" in result.stderr
    assert "2 failed" in result.stderr  # on the bar, as they happened


async def test_an_error_event_exits_1_after_ending_the_line(fake: Fake, doc: Path) -> None:
    fake.events = [*mapped(2), done(2), *message_events("Half an")[:4]]
    fake.events.append(error_event("overloaded_error", "Overloaded"))
    result = await invoke(str(doc), "-i", "Summarize", "--url", fake.url)
    assert result.exit_code == 1
    assert result.stdout == "Half an\n"
    assert result.stderr == "claude-proxy: error: overloaded_error: Overloaded\n"


async def test_an_error_during_the_map_exits_1(fake: Fake, doc: Path) -> None:
    fake.events = [progress("split", chunks=5), error_event("api_error", "Internal gateway error.")]
    result = await invoke(str(doc), "-i", "Summarize", "--url", fake.url, "--progress")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "api_error: Internal gateway error." in result.stderr


async def test_a_stream_cut_before_message_stop_is_an_error(fake: Fake, doc: Path) -> None:
    fake.events = [*mapped(2), done(2), *message_events("Cut")[:-2]]
    result = await invoke(str(doc), "-i", "Summarize", "--url", fake.url)
    assert result.exit_code == 1
    assert result.stdout == "Cut\n"
    assert "stream ended before the answer was complete" in result.stderr


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (
            400,
            b'{"type":"error","error":{"type":"invalid_request_error",'
            b'"message":"chunk_tokens: Input should be greater than or equal to 100"}}',
            "invalid_request_error: chunk_tokens: Input should be greater than or equal to 100",
        ),
        (502, b"<html>Bad gateway</html>", "HTTP 502: <html>Bad gateway</html>"),
    ],
)
async def test_an_http_error_is_its_type_and_message(
    fake: Fake, doc: Path, status: int, body: bytes, said: str
) -> None:
    fake.status, fake.body = status, body
    for extra in ([], ["--json"]):
        result = await invoke(str(doc), "-i", "Summarize", "--url", fake.url, *extra)
        assert result.exit_code == 1
        assert result.stdout == ""
        assert result.stderr == f"claude-proxy: error: {said}\n"


async def test_an_unreachable_gateway_is_one_line(doc: Path) -> None:
    with socket.socket() as held:  # a port nobody listens on
        held.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{held.getsockname()[1]}"
        result = await invoke(str(doc), "-i", "Summarize", "--url", url)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"claude-proxy: error: cannot reach the gateway at {url}")


# -- JSON ------------------------------------------------------------------------------


async def test_json_prints_the_response_body(fake: Fake, doc: Path) -> None:
    answer = json_answer("All of it, 全部。")
    fake.body = orjson.dumps(answer)
    result = await invoke(str(doc), "-i", "Summarize", "--url", fake.url, "--json", "--progress")
    assert result.exit_code == 0
    assert orjson.loads(result.stdout) == answer
    assert result.stderr == ""  # never a bar with --json
    assert fake.requests[0][1]["stream"] is False


async def test_json_with_missing_chunks_exits_3(fake: Fake, doc: Path) -> None:
    fake.body = orjson.dumps(json_answer("Most of it.", chunks=5, missing=[2]))
    result = await invoke(str(doc), "-i", "Summarize", "--url", fake.url, "--json")
    assert result.exit_code == 3
    assert orjson.loads(result.stdout)["document"]["missing_chunks"] == [2]
    assert "1 of 5 parts of the document could not be processed (parts 2," in result.stderr


# -- options and input -----------------------------------------------------------------


async def test_options_and_environment_reach_the_request(fake: Fake, doc: Path) -> None:
    fake.body = orjson.dumps(json_answer("ok"))
    env = {"CLAUDE_PROXY_URL": fake.url, "ANTHROPIC_API_KEY": "sk-from-env"}
    args = ["-i", "Find dates", "--json", "--model", "claude-haiku-4-5", "--max-tokens", "300"]
    result = await invoke(str(doc), *args, "--chunk-tokens", "200", env=env)
    assert result.exit_code == 0, result.stderr
    headers, body = fake.requests[-1]
    assert headers["x-api-key"] == "sk-from-env"
    assert body["model"] == "claude-haiku-4-5" and body["instruction"] == "Find dates"
    # Without --overlap-tokens, a small chunk keeps the gateway's share (5 %), not its 200.
    assert (body["chunk_tokens"], body["overlap_tokens"], body["max_tokens"]) == (200, 10, 300)

    result = await invoke(
        str(doc), *args, "--chunk-tokens", "8000", "--overlap-tokens", "0",
        "--api-key", "sk-flag", env=env,
    )  # fmt: skip
    headers, body = fake.requests[-1]
    assert headers["x-api-key"] == "sk-flag"  # the flag wins over the environment
    assert (body["chunk_tokens"], body["overlap_tokens"]) == (8000, 0)
    assert DocumentRequest("x", chunk_tokens=8000).body("d", stream=True)["overlap_tokens"] == 200


async def test_stdin_is_read_with_a_dash(fake: Fake) -> None:
    fake.body = orjson.dumps(json_answer("ok"))
    text = "从标准输入读取 from stdin.\n"
    result = await invoke(
        "-", "-i", "Summarize", "--url", fake.url, "--json", input=b"\xef\xbb\xbf" + text.encode()
    )
    assert result.exit_code == 0, result.stderr
    assert fake.requests[0][1]["document"] == text  # the BOM is not part of the text


async def test_unreadable_input_is_one_clear_line(fake: Fake, tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café crème".encode("latin-1"))
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n")
    cases = [
        (str(tmp_path / "nowhere.txt"), "cannot read", "No such file or directory"),
        (str(tmp_path), "cannot read", "directory"),
        (str(latin1), "is not UTF-8 text", "byte 0xe9 at offset 3"),
        (str(empty), "is empty", ""),
    ]
    for path, what, detail in cases:
        result = await invoke(path, "-i", "Summarize", "--url", fake.url)
        assert result.exit_code == 2, path
        assert what in result.stderr and detail in result.stderr
        assert result.stdout == ""
    assert fake.requests == []  # nothing was sent


async def test_instruction_is_required(doc: Path) -> None:
    result = await invoke(str(doc))
    assert result.exit_code == 2 and "--instruction" in result.stderr


# -- the parsing and the bar, without a server -----------------------------------------


def test_events_split_anywhere_give_the_same_answer() -> None:
    raw = b"".join([*mapped(3), done(3), *message_events("Hel", "lo, ", "世界😀")])
    for size in (1, 2, 7, len(raw)):
        stream = AnswerStream(Progress(None, enabled=False))
        splitter = EventSplitter()
        pieces = [raw[i : i + size] for i in range(0, len(raw), size)]
        text = "".join(stream.feed(event) for piece in pieces for event in splitter.feed(piece))
        assert text == "Hello, 世界😀" and stream.finished
        assert stream.progress.chunks == 3 and stream.progress.missing_chunks == []


def test_crlf_events_are_read_too() -> None:
    raw = b"".join([done(1), *message_events("crlf")]).replace(b"\n", b"\r\n")
    stream = AnswerStream(Progress(None, enabled=False))
    text = "".join(stream.feed(event) for event in EventSplitter().feed(raw))
    assert text == "crlf" and stream.finished


def test_an_error_event_raises_with_its_type_and_message() -> None:
    stream = AnswerStream(Progress(None, enabled=False))
    [event] = EventSplitter().feed(error_event("rate_limit_error", "Slow down"))
    with pytest.raises(StreamFailed, match="rate_limit_error: Slow down"):
        stream.feed(event)


def test_the_bar_counts_chunks_then_shows_each_reduce_level() -> None:
    screen = io.StringIO()
    bar = Progress(screen, enabled=True)
    bar.on_event({"stage": "split", "chunks": 4})
    assert (bar.description, bar.chunks) == ("map", 4)
    for index in range(3):
        bar.on_event({"stage": "chunk_started", "index": index, "chunks": 4})
    assert bar.postfix == "3 running"
    bar.on_event({"stage": "chunk_done", "index": 0, "chunks": 4, "ok": True})
    bar.on_event({"stage": "chunk_done", "index": 1, "chunks": 4, "ok": False})
    assert (bar.done, bar.postfix) == (2, "1 running, 1 failed")
    bar.on_event({"stage": "chunk_started", "index": 3, "chunks": 4})
    for index in (2, 3):
        bar.on_event({"stage": "chunk_done", "index": index, "chunks": 4, "ok": True})
    bar.on_event({"stage": "reduce_started", "level": 1, "inputs": 3})
    assert bar.description == "reduce"
    bar.on_event({"stage": "reduce_started", "level": 2, "inputs": 2})
    assert bar.description == "reduce 2"
    assert bar.missing_chunks == [1]  # the failures, until ``done`` says
    bar.on_event({"stage": "done", "chunks": 4, "missing_chunks": [1], "calls": 8})
    assert bar.missing_chunks == [1]
    shown = screen.getvalue()
    assert "map" in shown and "4/4" in shown and "reduce 2" in shown and "1 failed" in shown


def test_one_chunk_fills_the_bar_when_done() -> None:
    screen = io.StringIO()
    bar = Progress(screen, enabled=True)
    bar.on_event({"stage": "split", "chunks": 1})  # no chunk events: the final call is it
    bar.on_event({"stage": "done", "chunks": 1, "missing_chunks": [], "calls": 1})
    assert "1/1" in screen.getvalue().rsplit("\r", 1)[-1]


# -- end to end: the real gateway and simulator ------------------------------------------


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    path = tmp_path / "mixed.md"
    path.write_text(mixed_document(6000), encoding="utf-8")
    return path


async def run_cli(*args: str) -> tuple[int, str, str]:
    """The command as a process of its own: --demo configures logging, which is global,
    and an in-process gateway's request log would land in CliRunner's stdout."""
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    process = await asyncio.create_subprocess_exec(
        *CLI, "document", *args, env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_demo_answers_a_document(mixed: Path) -> None:
    status, out, err = await run_cli(str(mixed), "-i", "Summarize", "--demo", "--speed", "0")
    assert status == 0, err
    assert len(out.strip()) > 20 and out.endswith("\n")
    assert err == ""  # no bar off a terminal, and the in-process gateway logs no request


async def test_demo_json_splits_a_document_with_small_chunks(mixed: Path) -> None:
    status, out, err = await run_cli(
        str(mixed), "-i", "List the main points", "--demo", "--speed", "0",
        "--json", "--chunk-tokens", "200", "--max-tokens", "100",
    )  # fmt: skip
    assert status == 0, err
    answer = orjson.loads(out)
    assert answer["type"] == "message" and answer["content"][0]["text"]
    assert answer["document"]["chunks"] > 1 and answer["document"]["missing_chunks"] == []
    assert answer["document"]["calls"] > answer["document"]["chunks"]  # the reduce too


MARKER = "☠unreadable-part☠"


async def test_a_part_that_always_fails_exits_3_naming_it(
    start_sim: StartSim, start_gateway: StartGateway, tmp_path: Path
) -> None:
    sim = await start_sim(fail_marker=MARKER)
    gateway = await start_gateway(sim.url, retry=RetrySettings(max_attempts=1))
    text = mixed_document(6000)
    path = tmp_path / "doc.md"
    path.write_text(text[:3000] + MARKER + text[3000:], encoding="utf-8")
    args = [str(path), "-i", "Summarize", "--url", gateway.url, "--chunk-tokens", "300"]
    # A process of its own: this one's stdout has the gateway's request log.
    status, out, err = await run_cli(*args)
    assert status == 3, err
    assert out.strip()  # the rest is answered
    status, out, _ = await run_cli(*args, "--json")
    assert status == 3
    summary = orjson.loads(out)["document"]
    assert len(summary["missing_chunks"]) == 1 and summary["chunks"] > 2
    [missing] = summary["missing_chunks"]
    assert f"of {summary['chunks']} parts" in err
    assert f"(parts {missing}, numbered from 0)" in err
