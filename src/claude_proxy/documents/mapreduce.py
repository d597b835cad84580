"""Map-reduce over a long document: one call per chunk, then calls that combine them.

Every call is a sub-call of the client's (``Call.subcall``) through the upstream-call
service, so each is admitted in the tenant's window, retried, healed and metered like
any call: the gateway never goes round a tenant's limits to go faster. Map calls run
concurrently (at most ``documents.max_parallel`` in flight; the window decides how many
of those reach the API at once).

A chunk whose call fails is tried once more; if it fails again the document's answer
names the missing parts instead of pretending to be complete. Partial results are
combined in chunk order; when they do not fit one call's context they are combined in
groups first, level by level (hierarchical reduce). The last call's answer is the
document's answer; with one chunk there is no reduce, the one call is the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from claude_proxy.documents.settings import DocumentSettings
from claude_proxy.documents.split import Chunk, split_document
from claude_proxy.errors import GatewayError, InvalidRequest, UpstreamUnavailable
from claude_proxy.pipeline.call import Call
from claude_proxy.pipeline.service import UpstreamCalls
from claude_proxy.streaming.accumulate import message_text
from claude_proxy.tokens import estimate_text_tokens

__all__ = ["DocumentJob", "DocumentRequest", "Progress"]

_log = logging.getLogger("claude_proxy.documents")
_T = TypeVar("_T")
DEFAULT_VERSION = "2023-06-01"
# What the gateway's own wording of a map or reduce prompt may cost.
_PROMPT_TOKENS = 500

Progress = Callable[[dict[str, Any]], Awaitable[None]]


class DocumentRequest(BaseModel):
    """The body of ``POST /v1/documents``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: StrictStr = Field(min_length=1)
    document: StrictStr = Field(min_length=1)
    instruction: StrictStr = Field(min_length=1)
    chunk_tokens: StrictInt = Field(default=4000, ge=100, le=150_000)
    overlap_tokens: StrictInt = Field(default=200, ge=0)
    max_tokens: StrictInt = Field(default=1024, ge=1, le=128_000)
    stream: StrictBool = False
    system: StrictStr | None = None

    @field_validator("document", "instruction")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @model_validator(mode="after")
    def _overlap_below_half(self) -> DocumentRequest:
        if self.overlap_tokens * 2 >= self.chunk_tokens:
            raise ValueError("overlap_tokens must be less than half of chunk_tokens")
        return self

    @classmethod
    def parse(cls, body: Any) -> DocumentRequest:
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            raise InvalidRequest(f"{where}: {first['msg']}") from None


@dataclass
class _Partial:
    index: int  # the chunk's, or the group's at a reduce level
    text: str


@dataclass
class DocumentJob:
    """One document through map and reduce calls; ``final_body`` is the last call's."""

    calls: UpstreamCalls
    call: Call
    request: DocumentRequest
    settings: DocumentSettings
    progress: Progress
    chunks: list[Chunk] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    subcalls: int = 0

    def __post_init__(self) -> None:
        # The sub-calls are Messages calls: a client of this endpoint (curl, the CLI) need
        # not have sent the version header those require.
        headers = CIMultiDict(self.call.headers)
        headers.setdefault("anthropic-version", DEFAULT_VERSION)
        headers.popall("content-length", None)
        self._headers = CIMultiDictProxy(headers)
        self._last_error: GatewayError | None = None

    def check_fits(self) -> None:
        """Refuse (400) what could only fail later: a map call or a reduce of two partial
        results over ``documents.context_tokens``."""
        request = self.request
        context = self.settings.context_tokens
        fixed = (
            estimate_text_tokens(request.instruction)
            + estimate_text_tokens(request.system or "")
            + _PROMPT_TOKENS
        )
        if request.chunk_tokens + request.max_tokens + fixed > context:
            raise InvalidRequest(
                f"chunk_tokens + max_tokens + the instruction must fit documents.context_tokens "
                f"({context}): lower chunk_tokens or max_tokens"
            )
        # The reduce's groups then hold two partial results at least, even when the
        # estimate of an answer of max_tokens tokens is 1.3x that.
        if 4 * request.max_tokens + fixed > context:
            raise InvalidRequest(
                f"max_tokens is too large for partial results to be combined within "
                f"documents.context_tokens ({context})"
            )

    async def split(self) -> None:
        """Check the request and split the document (refusals here are plain 400s)."""
        request = self.request
        self.check_fits()
        self.chunks = await asyncio.to_thread(
            split_document, request.document, request.chunk_tokens, request.overlap_tokens
        )
        if len(self.chunks) > self.settings.max_chunks:
            raise InvalidRequest(
                f"The document makes {len(self.chunks)} chunks of {request.chunk_tokens} "
                f"tokens; at most {self.settings.max_chunks} (documents.max_chunks): raise "
                "chunk_tokens"
            )

    async def prepare(self) -> dict[str, Any]:
        """Map and reduce the chunks (``split`` first) down to the body of the final call
        (not yet sent)."""
        await self.progress({"stage": "split", "chunks": len(self.chunks)})
        if len(self.chunks) == 1:
            return self._body(self._map_prompt(self.chunks[0], alone=True))
        partials = await self._map()
        if not partials:
            # Every part failed: the last failure says why (a 400 for a bad model, say).
            raise self._last_error or UpstreamUnavailable(
                "No part of the document could be processed: every call for it failed."
            )
        level = 0
        while True:
            level += 1
            groups = self._groups(partials)
            await self.progress(
                {"stage": "reduce_started", "level": level, "inputs": len(partials)}
            )
            if len(groups) == 1:
                return self._body(self._reduce_prompt(groups[0], final=True))
            if len(groups) == len(partials):  # cannot happen after check_fits; never loop
                groups = [partials[i : i + 2] for i in range(0, len(partials), 2)]
            partials = await self._reduce_level(groups)

    def add_usage(self, usage: dict[str, Any] | None) -> None:
        for key, value in (usage or {}).items():
            if isinstance(value, int):
                self.usage[key] = self.usage.get(key, 0) + value

    def summary(self) -> dict[str, Any]:
        return {
            "chunks": len(self.chunks),
            "missing_chunks": sorted(self.missing),
            "calls": self.subcalls,
        }

    def final_call(self, body: dict[str, Any]) -> Call:
        self.subcalls += 1
        return self.call.subcall(body, self._headers)

    # -- map --------------------------------------------------------------------------

    def _parallel(self) -> int:
        """Calls in flight at once: never more than the tenant's window, so none waits in
        the admission queue long enough to be refused (queue_timeout)."""
        window = self.call.tenant.settings.max_concurrent if self.call.tenant else None
        return min(self.settings.max_parallel, window or self.settings.max_parallel)

    async def _map(self) -> list[_Partial]:
        gate = asyncio.Semaphore(self._parallel())
        total = len(self.chunks)

        async def one(chunk: Chunk) -> _Partial | None:
            async with gate:
                await self.progress(
                    {"stage": "chunk_started", "index": chunk.index, "chunks": total}
                )
                text = await self._ask(self._body(self._map_prompt(chunk)), chunk.index)
                ok = text is not None
                await self.progress(
                    {"stage": "chunk_done", "index": chunk.index, "chunks": total, "ok": ok}
                )
                if text is None:
                    self.missing.append(chunk.index)
                    return None
                return _Partial(chunk.index, text)

        results = await _all(one(chunk) for chunk in self.chunks)
        return [partial for partial in results if partial is not None]

    async def _ask(self, body: dict[str, Any], index: int) -> str | None:
        """The text of one call's answer, tried again on failure; None if it never worked.

        A refusal that holds for the whole request (a bad model, max_tokens above the
        model's, a key refused) is raised: every other part would get it too. A rate
        limit is waited out (its retry-after) within ``documents.wait_seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.wait_seconds
        failures = 0
        while True:
            self.subcalls += 1
            sub = self.call.subcall(body, self._headers)
            try:
                message = await self.calls.message(sub)
            except GatewayError as exc:
                self._last_error = exc
                if 400 <= exc.status < 500 and exc.status not in (408, 409, 429):
                    raise
                _log.warning("document part %d failed: %s %s", index, exc.error_type, exc.status)
                if exc.status == 429:
                    wait = _retry_after(exc)
                    if loop.time() + wait < deadline:
                        await asyncio.sleep(wait)
                        continue
                failures += 1
                if failures > self.settings.map_retries:
                    return None
                continue
            self.add_usage(message.get("usage"))
            return message_text(message)

    # -- reduce -----------------------------------------------------------------------

    def _groups(self, partials: list[_Partial]) -> list[list[_Partial]]:
        """Consecutive partials in groups that each fit one call."""
        budget = self.settings.context_tokens - self.request.max_tokens
        budget -= estimate_text_tokens(self.request.instruction) + _PROMPT_TOKENS
        groups: list[list[_Partial]] = [[]]
        used = 0
        for partial in partials:
            cost = estimate_text_tokens(partial.text) + 20
            if groups[-1] and used + cost > budget:
                groups.append([])
                used = 0
            groups[-1].append(partial)
            used += cost
        return groups

    async def _reduce_level(self, groups: list[list[_Partial]]) -> list[_Partial]:
        gate = asyncio.Semaphore(self._parallel())

        async def one(index: int, group: list[_Partial]) -> _Partial:
            async with gate:
                text = await self._ask(self._body(self._reduce_prompt(group, final=False)), index)
            if text is None:  # the parts stay as they were: nothing is dropped
                text = "\n\n".join(partial.text for partial in group)
            return _Partial(group[0].index, text)

        return await _all(one(i, g) for i, g in enumerate(groups))

    # -- prompts ----------------------------------------------------------------------

    def _body(self, prompt: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.request.model,
            "max_tokens": self.request.max_tokens,
            "messages": [{"role": "user", "content": prompt}],
        }
        if self.request.system:
            body["system"] = self.request.system
        return body

    def _map_prompt(self, chunk: Chunk, *, alone: bool = False) -> str:
        if alone:
            return f"{self.request.instruction}\n\n<document>\n{chunk.text}\n</document>"
        return (
            f"This is part {chunk.index} (of parts 0 to {len(self.chunks) - 1}, characters "
            f"{chunk.start} to {chunk.end}) of a document too long to read at once. Follow "
            "the instruction for this part alone; another step combines the parts.\n\n"
            f"Instruction: {self.request.instruction}\n\n"
            f'<document_part index="{chunk.index}">\n{chunk.text}\n</document_part>'
        )

    def _reduce_prompt(self, group: list[_Partial], *, final: bool) -> str:
        parts = "\n\n".join(
            f'<part index="{partial.index}">\n{partial.text}\n</part>' for partial in group
        )
        missing = ""
        if self.missing:
            listed = ", ".join(str(index) for index in sorted(self.missing))
            missing = (
                f"\n\nParts {listed} of the document could not be processed: say in your "
                "answer that they are missing, and do not guess their content."
            )
        what = "the answer to the instruction" if final else "one combined result"
        return (
            f"A document too long to read at once was processed in {len(self.chunks)} parts, "
            "in order; below are the results for some of them. Combine them into "
            f"{what}, keeping the document's order; cite parts as [part N] where useful."
            f"{missing}\n\nInstruction: {self.request.instruction}\n\n{parts}"
        )


async def _all(jobs: Iterable[Coroutine[Any, Any, _T]]) -> list[_T]:
    """Run ``jobs`` concurrently; the first failure (or the client leaving) cancels the
    rest, so no call goes on for an answer nobody will read."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(job) for job in jobs]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


def _retry_after(exc: GatewayError) -> float:
    try:
        return min(max(float(exc.headers.get("retry-after", "1")), 0.1), 60.0)
    except ValueError:
        return 1.0
