"""Small helpers shared by the tests."""

from __future__ import annotations

from typing import Any

API_HEADERS = {
    "content-type": "application/json",
    "anthropic-version": "2023-06-01",
    "x-api-key": "client-key",
}


def message_body(text: str = "Hello there", **fields: Any) -> dict[str, Any]:
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
        **fields,
    }


class Clock:
    """A clock a test moves by hand (``clock.now += 5``) for code that takes ``clock=``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
