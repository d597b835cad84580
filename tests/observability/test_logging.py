"""Request log lines: one JSON object per line on stderr, never a key or a prompt."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import structlog

from claude_proxy.admission.base import Usage
from claude_proxy.observability import (
    configure_logging,
    get_logger,
    log_request,
    request_log_fields,
)
from claude_proxy.observability.logging import drop_sensitive_fields, is_sensitive

KEY = "sk-ant-api03-topsecretkey"
PROMPT = "my medical history is private"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(err: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in err.splitlines() if line.strip()]


def test_one_json_line_per_request(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    log = get_logger("claude_proxy.access")
    log_request(
        log,
        request_id="req_1",
        tenant="acme",
        model="claude-sonnet-4-5-20250929",
        stream=True,
        status=200,
        attempts=2,
        duration=1.23456,
        overhead=0.00042,
        ttft=0.3,
        upstream=1.2,
        queue_wait=0.01,
        usage=Usage(input_tokens=10, output_tokens=20, cache_read_input_tokens=3),
    )
    log_request(log, request_id="req_2", tenant="acme", model=None, stream=False,
                status=529, attempts=3, duration=0.5, error_type="overloaded_error")  # fmt: skip
    first, second = lines(capsys.readouterr().err)
    assert first["event"] == "request"
    assert first["level"] == "info"
    assert first["logger"] == "claude_proxy.access"
    assert first["timestamp"].endswith("Z")
    expected = {
        "request_id": "req_1", "tenant": "acme", "model": "claude-sonnet-4-5-20250929",
        "stream": True, "status": 200, "attempts": 2, "duration_ms": 1234.56,
        "overhead_ms": 0.42, "ttft_ms": 300.0, "upstream_ms": 1200.0, "queue_ms": 10.0,
        "input_tokens": 10, "output_tokens": 20, "cache_read_tokens": 3, "cache_write_tokens": 0,
    }  # fmt: skip
    assert expected.items() <= first.items()
    assert second["level"] == "warning"
    assert second["error_type"] == "overloaded_error"
    assert second["model"] == "unrecognised"
    assert "ttft_ms" not in second


def test_secrets_and_prompts_are_dropped_before_rendering(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("debug", "json")
    structlog.get_logger().info(
        "oops",
        api_key=KEY,
        x_api_key=KEY,
        upstream_api_key=KEY,
        Authorization=f"Bearer {KEY}",
        messages=[{"role": "user", "content": PROMPT}],
        system=PROMPT,
        prompt=PROMPT,
        context={"headers": {"x-api-key": KEY}, "client_secret": KEY, "path": "/v1/messages"},
        input_tokens=5,
    )
    err = capsys.readouterr().err
    assert KEY not in err and "topsecret" not in err and PROMPT not in err
    (line,) = lines(err)
    assert line["input_tokens"] == 5
    assert line["context"] == {"path": "/v1/messages"}
    assert set(line["dropped_fields"]) == {
        "api_key", "x_api_key", "upstream_api_key", "Authorization", "messages", "system",
        "prompt", "context.headers", "context.client_secret",
    }  # fmt: skip


def test_a_key_sent_as_the_model_is_not_logged() -> None:
    fields = request_log_fields(
        request_id="r", tenant="t", model=KEY, stream=False, status=400, attempts=0, duration=0.1
    )
    assert fields["model"] == "unrecognised"


def test_standard_library_logs_share_the_format_and_the_level(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "json")
    stdlib = logging.getLogger("claude_proxy.upstream")
    stdlib.debug("hidden")
    stdlib.info("upstream gave up request_id=%s", "req_9")
    structlog.get_logger().debug("hidden too")
    (line,) = lines(capsys.readouterr().err)
    assert line == line | {"event": "upstream gave up request_id=req_9", "level": "info"}


def test_console_format_for_humans(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("warning", "console")
    structlog.get_logger().info("quiet")
    structlog.get_logger().warning("loud", api_key=KEY, tenant="acme")
    err = capsys.readouterr().err
    assert "loud" in err and "acme" in err
    assert "quiet" not in err and KEY not in err


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("api_key", True), ("x-api-key", True), ("authorization", True), ("messages", True),
        ("system", True), ("prompt", True), ("content", True), ("refresh_token", True),
        ("client_secret", True), ("db_password", True), ("Cookie", True),
        ("input_tokens", False), ("output_tokens", False), ("tenant", False), ("model", False),
        ("request_id", False), ("status", False), ("duration_ms", False),
    ],
)  # fmt: skip
def test_sensitive_names(name: str, sensitive: bool) -> None:
    assert is_sensitive(name) is sensitive


def test_processor_leaves_clean_events_alone() -> None:
    event = {"event": "request", "tenant": "acme", "status": 200}
    assert drop_sensitive_fields(None, "info", dict(event)) == event
