"""Message Batches, simulated: create, list, retrieve, cancel, delete, results as JSONL.

A batch is processed in the background, each request answered as a JSON call would be
(no faults, no pacing): at once by default, or over ``x-sim-batch-seconds`` given when
it is created, so that a test can cancel one in progress without sleeping. A request
whose ``params`` the API would refuse becomes an ``errored`` result, as in the API;
a malformed batch (no requests, a duplicate ``custom_id``) is refused with 400.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from claude_proxy.errors import GatewayError, InvalidRequest, NotFound, new_id
from claude_proxy.sim.answer import answer
from claude_proxy.sim.files import check_file_sources, list_page, rfc3339
from claude_proxy.sim.validation import load_object, parse_request

if TYPE_CHECKING:
    from claude_proxy.sim.state import SimState

__all__ = ["Batch", "BatchStore", "parse_batch"]

MAX_REQUESTS = 100_000
_RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")


@dataclass(slots=True)
class Batch:
    requests: list[tuple[str, Any]]  # (custom_id, params)
    version: str
    betas: frozenset[str]
    results_base: str  # scheme://host the results are fetched from
    id: str = field(default_factory=lambda: new_id("msgbatch_01"))
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    cancel_initiated_at: datetime | None = None
    ended_at: datetime | None = None
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def status(self) -> str:
        if self.ended_at is not None:
            return "ended"
        return "canceling" if self.cancel_initiated_at is not None else "in_progress"

    def to_api(self) -> dict[str, Any]:
        counts = dict.fromkeys(_RESULT_TYPES, 0)
        processing = len(self.requests)
        if self.ended_at is not None:  # the API counts outcomes only once all have ended
            processing = 0
            for result in self.results.values():
                counts[result["type"]] += 1
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.status,
            "request_counts": {"processing": processing, **counts},
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.created_at + timedelta(hours=24)),
            "ended_at": rfc3339(self.ended_at) if self.ended_at else None,
            "cancel_initiated_at": (
                rfc3339(self.cancel_initiated_at) if self.cancel_initiated_at else None
            ),
            "archived_at": None,
            "results_url": (
                f"{self.results_base}/v1/messages/batches/{self.id}/results"
                if self.ended_at
                else None
            ),
        }

    def results_jsonl(self) -> bytes:
        lines = (
            orjson.dumps({"custom_id": custom_id, "result": self.results[custom_id]})
            for custom_id, _ in self.requests
        )
        return b"\n".join(lines) + b"\n"


def parse_batch(body: bytes) -> list[tuple[str, Any]]:
    """The ``requests`` of a create call; each one's ``params`` are checked when it runs."""
    data = load_object(body)
    requests = data.get("requests")
    if not isinstance(requests, list) or not requests:
        raise InvalidRequest("requests: Input should be a non-empty list")
    if len(requests) > MAX_REQUESTS:
        raise InvalidRequest(f"requests: at most {MAX_REQUESTS} requests per batch")
    parsed: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(requests):
        custom_id = item.get("custom_id") if isinstance(item, dict) else None
        if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 64:
            raise InvalidRequest(f"requests.{i}.custom_id: a string of 1 to 64 characters")
        if custom_id in seen:
            raise InvalidRequest(f"requests.{i}.custom_id: {custom_id!r} is used twice")
        seen.add(custom_id)
        if not isinstance(item.get("params"), dict):
            raise InvalidRequest(f"requests.{i}.params: Field required")
        parsed.append((custom_id, item["params"]))
    return parsed


class BatchStore:
    """The simulator's batches, newest last; the oldest ended ones go beyond ``limit``."""

    def __init__(self, limit: int = 1000) -> None:
        self._batches: OrderedDict[str, Batch] = OrderedDict()
        self._limit = limit

    def start(self, state: SimState, batch: Batch, seconds: float) -> None:
        """Keep ``batch`` and process it in the background over ``seconds``."""
        self._batches[batch.id] = batch
        batch.task = asyncio.get_running_loop().create_task(_process(state, batch, seconds))
        while len(self._batches) > self._limit:
            oldest = next((b for b in self._batches.values() if b.ended_at), None)
            if oldest is None:
                break
            del self._batches[oldest.id]

    def get(self, batch_id: str) -> Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise NotFound(f"Message batch not found: {batch_id}")
        return batch

    def delete(self, batch_id: str) -> None:
        batch = self.get(batch_id)
        if batch.ended_at is None:
            raise InvalidRequest(
                "A batch that is still processing cannot be deleted; cancel it first."
            )
        del self._batches[batch_id]

    def page(self, query: Any) -> dict[str, Any]:
        return list_page([b.to_api() for b in reversed(self._batches.values())], query)

    async def close(self) -> None:
        tasks = [b.task for b in self._batches.values() if b.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _process(state: SimState, batch: Batch, seconds: float) -> None:
    pace = seconds / len(batch.requests)
    for custom_id, params in batch.requests:
        if batch.cancelled.is_set():
            batch.results[custom_id] = {"type": "canceled"}
            continue
        batch.results[custom_id] = _result(state, batch, params)
        if pace > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(batch.cancelled.wait(), pace)
        else:
            await asyncio.sleep(0)  # other requests are served meanwhile
    batch.ended_at = datetime.now(UTC)


def _result(state: SimState, batch: Batch, params: dict[str, Any]) -> dict[str, Any]:
    try:
        if params.get("stream"):
            raise InvalidRequest("stream: batch requests cannot stream")
        req = parse_request(params, batch.version, betas=batch.betas)
        check_file_sources(state.files, req.messages)
    except GatewayError as exc:
        error = {"type": exc.error_type, "message": exc.message}
        return {
            "type": "errored",
            "error": {"type": "error", "error": error, "request_id": new_id("req_011C")},
        }
    return {"type": "succeeded", "message": answer(state, req).whole()}
