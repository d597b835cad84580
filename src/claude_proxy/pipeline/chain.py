"""The chain of stages for each route, and one call's run through it.

``Pipeline`` is built once from the stage list (``pipeline.build``): for each route it
keeps the stages that apply, and of those the ones with each optional hook, so a call
pays only for the hooks that exist. ``Run`` is one call's trip: ``request()`` runs
the request hooks in order, the answer hooks are applied on the way back, and
``finish()`` tells the entered stages how it ended, in reverse order, exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from claude_proxy.errors import GatewayError
from claude_proxy.jsonbytes import to_json
from claude_proxy.pipeline.call import Call, Route
from claude_proxy.pipeline.stage import (
    EventFilter,
    EventStage,
    FinishStage,
    MessageStage,
    Outcome,
    SettleStage,
    Stage,
)

__all__ = ["Chain", "Pipeline", "Run"]

_log = logging.getLogger("claude_proxy.pipeline")


@dataclass(frozen=True, slots=True)
class Chain:
    """The stages of one route, and the ones among them with each hook."""

    route: Route
    stages: tuple[Stage, ...]
    message: tuple[MessageStage, ...]  # reversed: nearest the upstream first
    events: tuple[EventStage, ...]  # reversed
    settle: tuple[SettleStage, ...]  # reversed
    finish: tuple[tuple[int, FinishStage], ...]  # (position, stage), reversed

    @classmethod
    def of(cls, route: Route, stages: Sequence[Stage]) -> Chain:
        mine = tuple(stage for stage in stages if route in stage.routes)
        return cls(
            route=route,
            stages=mine,
            message=tuple(s for s in reversed(mine) if isinstance(s, MessageStage)),
            events=tuple(s for s in reversed(mine) if isinstance(s, EventStage)),
            settle=tuple(s for s in reversed(mine) if isinstance(s, SettleStage)),
            finish=tuple(
                (i, s) for i, s in reversed(list(enumerate(mine))) if isinstance(s, FinishStage)
            ),
        )

    @property
    def names(self) -> list[str]:
        return [stage.name for stage in self.stages]


class Pipeline:
    """Every route's chain, built once from the ordered stage list."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)
        self._chains = {route: Chain.of(route, self.stages) for route in Route}

    def chain(self, route: Route) -> Chain:
        return self._chains[route]

    def start(self, call: Call) -> Run:
        return Run(self._chains[call.route], call)


class Run:
    """One call's trip through its route's chain."""

    __slots__ = ("_entered", "_finished", "call", "chain")

    def __init__(self, chain: Chain, call: Call) -> None:
        self.chain = chain
        self.call = call
        self._entered = 0
        self._finished = False

    async def request(self) -> None:
        """Run the request hooks in order; a refusal propagates (its stage was entered)."""
        call = self.call
        for stage in self.chain.stages:
            self._entered += 1
            await stage.on_request(call)

    @property
    def transforms_messages(self) -> bool:
        return bool(self.chain.message)

    def on_message(self, body: bytes) -> bytes:
        """A JSON answer through the message hooks: parsed and re-encoded only if any."""
        if not self._message_stages():
            return body
        return to_json(self.on_message_object(orjson.loads(body)))

    def on_message_object(self, message: dict[str, Any]) -> dict[str, Any]:
        """An answer the gateway holds parsed already, through the message hooks."""
        for stage in self._message_stages():
            message = stage.on_message(self.call, message)
        return message

    def _message_stages(self) -> list[MessageStage]:
        """The message stages this call's answer concerns (a stage without
        ``wants_message`` wants every answer)."""
        return [
            stage
            for stage in self.chain.message
            if getattr(stage, "wants_message", _always)(self.call)
        ]

    async def settle(self) -> None:
        """A whole JSON answer is about to be sent: the stages finish what must be durable."""
        for stage in self.chain.settle:
            await stage.settle(self.call)

    def event_filters(self) -> list[EventFilter]:
        """This call's stream filters, nearest the upstream first."""
        filters = []
        for stage in self.chain.events:
            event_filter = stage.event_filter(self.call)
            if event_filter is not None:
                filters.append(event_filter)
        return filters

    def finish(self, outcome: Outcome) -> None:
        """Tell the entered stages how the call ended (once; later calls do nothing)."""
        if self._finished:
            return
        self._finished = True
        for position, stage in self.chain.finish:
            if position < self._entered:
                try:
                    stage.on_finish(self.call, outcome)
                except Exception:
                    # One stage's bookkeeping must not cost the others theirs.
                    _log.exception("stage %s failed to finish %s", stage.name, self.call.request_id)

    def fail(self, exc: BaseException, *, answered: bool = False) -> Outcome:
        """Finish with the outcome ``exc`` means; return it."""
        outcome = outcome_of(exc, answered=answered)
        self.finish(outcome)
        return outcome


def _always(call: Call) -> bool:
    return True


def outcome_of(exc: BaseException, *, answered: bool = False) -> Outcome:
    """The outcome an exception stands for (``answered``: the client had it all)."""
    if isinstance(exc, GatewayError):
        return Outcome(exc.status, exc.error_type)
    if isinstance(exc, asyncio.CancelledError):
        return Outcome(200) if answered else Outcome(499, "client_disconnect")
    return Outcome(500, "api_error")
