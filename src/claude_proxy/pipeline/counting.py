"""Count a broken part's tokens with the upstream's own ``count_tokens`` (exact, one free call).

Chosen with ``retry.heal_token_count: count_tokens``. The endpoint counts a prompt, so
the text's tokens are the count of a one-message prompt holding it, less that prompt's
framing (measured once per model with a one-token message). When the call fails (no
credential in transparent mode, the upstream down) the estimate is used instead.
"""

from __future__ import annotations

import logging

import orjson
from multidict import CIMultiDict, MultiMapping

from claude_proxy.errors import GatewayError
from claude_proxy.tokens import estimate_text_tokens
from claude_proxy.upstream.forwarder import Forwarder, UpstreamRequest

__all__ = ["UpstreamCounter"]

_log = logging.getLogger("claude_proxy.upstream")
_PATH = "/v1/messages/count_tokens"
_ONE_TOKEN = "."
_KEPT_HEADERS = frozenset({"anthropic-version", "anthropic-beta", "x-api-key", "authorization"})


class UpstreamCounter:
    def __init__(self, forwarder: Forwarder) -> None:
        self._forwarder = forwarder
        self._framing: dict[str, int] = {}

    async def output_tokens(self, model: str | None, text: str, headers: MultiMapping[str]) -> int:
        if not text:
            return 0
        if model is None:
            return estimate_text_tokens(text)
        try:
            framing = self._framing.get(model)
            if framing is None:
                framing = self._framing[model] = await self._count(model, _ONE_TOKEN, headers) - 1
            return max(0, await self._count(model, text, headers) - framing)
        except (GatewayError, ValueError) as exc:
            _log.info("count_tokens failed, estimating instead: %s", exc)
            return estimate_text_tokens(text)

    async def _count(self, model: str, text: str, headers: MultiMapping[str]) -> int:
        # Only what the API needs from the client's request: its version, betas and (in
        # transparent mode) its credential; nothing else of the client's is for this call.
        kept = CIMultiDict((k, v) for k, v in headers.items() if k.lower() in _KEPT_HEADERS)
        kept["content-type"] = "application/json"
        request = UpstreamRequest("count_tokens", "POST", _PATH, kept)
        body = {"model": model, "messages": [{"role": "user", "content": text}]}
        log = self._forwarder.start(request, stream=False)
        reply = await self._forwarder.send(log, orjson.dumps(body))
        if reply.status != 200:
            raise ValueError(f"count_tokens answered {reply.status}")
        count = orjson.loads(reply.body).get("input_tokens")
        if not isinstance(count, int):
            raise ValueError("count_tokens answered without input_tokens")
        return count
