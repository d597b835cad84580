"""Counting the tokens of text whose usage never arrived (a broken stream's).

``EstimatingCounter`` uses the gateway's estimator (fast, errs high). Another counter
(``pipeline.counting.UpstreamCounter``) asks the API's ``count_tokens``: exact for the
upstream's tokenizer, at the cost of one free call per heal.
"""

from __future__ import annotations

from typing import Protocol

from multidict import MultiMapping

from claude_proxy.tokens.estimate import estimate_text_tokens

__all__ = ["EstimatingCounter", "TokenCounter"]


class TokenCounter(Protocol):
    async def output_tokens(self, model: str | None, text: str, headers: MultiMapping[str]) -> int:
        """Tokens ``text`` cost as ``model``'s output, erring high when unsure.

        ``headers``: the client request's (an upstream counter sends them on, as any call).
        """


class EstimatingCounter:
    async def output_tokens(self, model: str | None, text: str, headers: MultiMapping[str]) -> int:
        return estimate_text_tokens(text)
