"""Which rules a request matches: its facts, read once and only when a rule asks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from functools import cached_property
from typing import Any

from claude_proxy.policies.settings import Match, PolicyRoute, PolicyRule
from claude_proxy.policies.task import Task, detect_task, task_of_text, user_turns

__all__ = ["RequestFacts", "matching"]


class RequestFacts:
    """What rules match on; the task and the turn are worked out on first use."""

    def __init__(
        self,
        body: Mapping[str, Any],
        *,
        route: PolicyRoute,
        tenant: str | None,
        headers: Mapping[str, str],
    ) -> None:
        self.body = body
        self.route = route
        self.tenant = tenant
        self.headers = headers  # case-insensitive (the call's)
        model = body.get("model")
        self.model = model if isinstance(model, str) else None

    @cached_property
    def task(self) -> Task:
        if self.route == "documents":
            return task_of_text(
                _string(self.body.get("system")), _string(self.body.get("instruction"))
            )
        return detect_task(self.body)

    @cached_property
    def turn(self) -> int:
        # A document request is one question.
        return 1 if self.route == "documents" else user_turns(self.body.get("messages"))

    @cached_property
    def metadata(self) -> Mapping[str, Any]:
        metadata = self.body.get("metadata")
        return metadata if isinstance(metadata, dict) else {}


def matching(rules: Sequence[PolicyRule], facts: RequestFacts) -> list[PolicyRule]:
    """The rules whose every criterion holds for ``facts``, in configuration order."""
    return [rule for rule in rules if _matches(rule.match, facts)]


def _matches(match: Match, facts: RequestFacts) -> bool:
    if match.routes is not None and facts.route not in match.routes:
        return False
    if match.tenants is not None and facts.tenant not in match.tenants:
        return False
    if match.models is not None and not (
        facts.model is not None and any(fnmatchcase(facts.model, glob) for glob in match.models)
    ):
        return False
    if match.metadata is not None and not _all_match(match.metadata, facts.metadata):
        return False
    if match.headers is not None and not _all_match(match.headers, facts.headers):
        return False
    if match.turns is not None:
        turn = facts.turn
        low, high = match.turns.min, match.turns.max
        if (low is not None and turn < low) or (high is not None and turn > high):
            return False
    # The task last: it is the one that reads the prompt.
    return match.tasks is None or facts.task in match.tasks


def _all_match(globs: Mapping[str, str], values: Mapping[str, Any]) -> bool:
    for name, glob in globs.items():
        value = values.get(name)
        if not isinstance(value, str) or not fnmatchcase(value, glob):
            return False
    return True


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""
