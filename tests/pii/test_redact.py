"""Walking a request: every text the API reads is checked; nothing else is touched."""

from __future__ import annotations

from typing import Any

from claude_proxy.pii import PiiSettings, Policy, Redaction
from claude_proxy.pii.redact import redact_body

EMAIL = "bob@example.com"


def masked(body: dict[str, Any]) -> dict[str, Any] | None:
    return redact_body(body, Redaction(Policy(PiiSettings(mode="mask"))))


def test_metadata_citations_and_search_results_are_checked() -> None:
    body = {
        "model": "m",
        "metadata": {"user_id": EMAIL},
        "messages": [
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "text",
                        "text": "As quoted",
                        "citations": [{"type": "char_location", "cited_text": f"mail {EMAIL}",
                                       "document_title": f"Letter to {EMAIL}"}],
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "search_result", "source": f"https://x.io/?u={EMAIL}",
                     "title": "t", "content": [{"type": "text", "text": EMAIL}]},
                ],
            },
        ],
    }  # fmt: skip
    result = masked(body)
    assert result is not None
    assert EMAIL not in repr(result)
    assert result["metadata"] == {"user_id": "[EMAIL]"}


def test_what_the_api_does_not_read_as_text_is_left_alone() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "iVBORw0KGgo4111111111111111"}}  # fmt: skip
    thinking = {"type": "thinking", "thinking": f"the user is {EMAIL}", "signature": "sig"}
    body = {
        "model": "m",
        "tools": [{"name": "t", "description": f"write to {EMAIL}", "input_schema": {}}],
        "messages": [{"role": "assistant", "content": [thinking]},
                     {"role": "user", "content": [image, {"type": "text", "text": "hi"}]}],
    }  # fmt: skip
    assert masked(body) is None  # signed thinking, images and tool definitions pass as sent
