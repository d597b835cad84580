"""The chain: stages run in order, answer hooks in reverse, finish hooks once for entered stages."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from claude_proxy.errors import GatewayError, PermissionDenied
from claude_proxy.pipeline.call import Call, Route
from claude_proxy.pipeline.chain import Pipeline
from claude_proxy.pipeline.stage import ALL_ROUTES, Outcome
from claude_proxy.streaming.sse import Event


class Step:
    """A stage that writes down what happens to it."""

    def __init__(
        self, name: str, journal: list[str], routes: frozenset[Route] = ALL_ROUTES
    ) -> None:
        self.name = name
        self.routes = routes
        self._journal = journal

    async def on_request(self, call: Call) -> None:
        self._journal.append(f"request {self.name}")

    def on_finish(self, call: Call, outcome: Outcome) -> None:
        self._journal.append(f"finish {self.name} {outcome.status}")


class Refuse(Step):
    async def on_request(self, call: Call) -> None:
        await super().on_request(call)
        raise PermissionDenied("no")


class Tag:
    """Appends its name to the answer's text, JSON or stream."""

    routes = ALL_ROUTES

    def __init__(self, name: str) -> None:
        self.name = name

    async def on_request(self, call: Call) -> None:
        pass

    def on_message(self, call: Call, message: dict[str, Any]) -> dict[str, Any]:
        message["content"][0]["text"] += self.name
        return message

    def event_filter(self, call: Call) -> TagFilter:
        return TagFilter(self.name)


class TagFilter:
    def __init__(self, name: str) -> None:
        self._name = name

    def on_events(self, events: list[Event]) -> list[Event]:
        return [*events, Event("tag", self._name.encode())]

    def flush(self) -> list[Event]:
        return []


def new_call(route: Route = Route.MESSAGES) -> Call:
    return Call.create("r", route, path="/", headers=CIMultiDictProxy(CIMultiDict()))


async def test_stages_run_in_order_and_finish_in_reverse() -> None:
    journal: list[str] = []
    pipeline = Pipeline([Step("a", journal), Step("b", journal), Step("c", journal)])
    run = pipeline.start(new_call())
    await run.request()
    run.finish(Outcome(200))
    run.finish(Outcome(500))  # only the first finish counts
    assert journal == [
        "request a",
        "request b",
        "request c",
        "finish c 200",
        "finish b 200",
        "finish a 200",
    ]


async def test_a_refusal_stops_the_chain_and_only_entered_stages_finish() -> None:
    journal: list[str] = []
    pipeline = Pipeline([Step("a", journal), Refuse("b", journal), Step("c", journal)])
    run = pipeline.start(new_call())
    with pytest.raises(GatewayError) as refused:
        await run.request()
    outcome = run.fail(refused.value)
    assert outcome == Outcome(403, "permission_error")
    assert journal == ["request a", "request b", "finish b 403", "finish a 403"]


async def test_each_route_has_only_its_own_stages() -> None:
    journal: list[str] = []
    pipeline = Pipeline(
        [Step("all", journal), Step("messages", journal, frozenset({Route.MESSAGES}))]
    )
    assert pipeline.chain(Route.MESSAGES).names == ["all", "messages"]
    assert pipeline.chain(Route.RESUME).names == ["all"]
    await pipeline.start(new_call(Route.RESUME)).request()
    assert journal == ["request all"]


def test_answer_hooks_run_nearest_the_upstream_first() -> None:
    pipeline = Pipeline([Tag("1"), Tag("2")])
    run = pipeline.start(new_call())
    message = {"content": [{"type": "text", "text": "x"}]}
    assert orjson.loads(run.on_message(orjson.dumps(message)))["content"][0]["text"] == "x21"
    events: list[Event] = []
    for event_filter in run.event_filters():
        events = event_filter.on_events(events)
    assert [e.raw for e in events] == [b"2", b"1"]


def test_without_answer_hooks_a_message_passes_untouched() -> None:
    run = Pipeline([Step("a", [])]).start(new_call())
    body = b'{"content": [] }'
    assert run.on_message(body) is body
    assert run.event_filters() == []


async def test_a_failing_finish_hook_does_not_cost_the_others_theirs() -> None:
    journal: list[str] = []

    class Broken(Step):
        def on_finish(self, call: Call, outcome: Outcome) -> None:
            raise RuntimeError("bug")

    run = Pipeline([Step("a", journal), Broken("b", journal)]).start(new_call())
    await run.request()
    run.finish(Outcome(200))
    assert journal[-1] == "finish a 200"
