"""The matched rules applied to one body, within what the model and the API version accept.

Each parameter is decided by the first matching rule that names it (in ``set``,
``default`` or ``clamp``); later rules leave it alone. The decided value is then fitted to
the request, and a value the request cannot carry is skipped, never sent:

- ``thinking_budget`` changes the budget of ``thinking: {type: enabled}``; on a request
  without ``thinking`` it turns thinking on, unless that would be refused (a prefill, a
  forced tool, a tool loop under way whose last assistant turn does not start with a
  thinking block, sampling parameters, a budget that does not fit below
  ``max_tokens``). An explicit ``disabled`` or ``adaptive`` is the client's to keep.
  Models with adaptive thinking only take no budget (``effort`` is their lever).
- ``max_tokens`` is capped at the model's ceiling, and a raise at the context window
  minus the estimated input; on a request that does not stream, a raise stops at
  ``NON_STREAMING_MAX_TOKENS`` (``fitted``; a lower value is always allowed). It never
  goes below the thinking budget plus one: the budget is lowered to fit (``fitted``),
  down to the minimum of 1,024, then max_tokens stays above that. ``0`` (a cache
  warm-up) is left alone.
- ``effort`` goes to ``output_config.effort`` on models that take it, at the highest
  level the model has that is not above the one asked for.
- ``temperature`` and ``top_p`` only where the model takes sampling, on
  ``anthropic-version: 2023-06-01``, without thinking on, and on models that refuse the
  two together only when the other is not in the request (temperature is decided first).

For a model the table does not know the rules only lower or adjust what the client sent
(its ``max_tokens``, budget, sampling value; an effort to low, medium or high), never add
a parameter or raise one. On ``POST /v1/documents`` only ``max_tokens`` applies, lowered.

Skip reasons (header and metric label): ``route``, ``unknown_model``, ``model``,
``version``, ``beta``, ``thinking``, ``exclusive``, ``adaptive``, ``disabled``,
``prefill``, ``tool_choice``, ``tool_loop``, ``sampling``, ``max_tokens``, ``context``,
``non_streaming``, ``warm_up``,
``invalid`` (the client's own value is malformed: the API will say so).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from claude_proxy.policies.capabilities import EFFORTS, OLD_VERSION, ModelCaps, capabilities
from claude_proxy.policies.decide import Wanted, current_value, decide, integer, is_number
from claude_proxy.policies.report import Applied, PolicyReport, Skipped
from claude_proxy.policies.settings import PARAMETERS, Parameter, PolicyRoute, PolicyRule
from claude_proxy.sessions.budget import context_window
from claude_proxy.tokens import estimate_input_tokens

__all__ = ["Target", "apply_policies"]

MIN_BUDGET = 1024
# The SDKs refuse a call that does not stream when it may run past 10 minutes (at
# 3,600 s per 128,000 tokens: above 21,333), and the gateway's attempt timeout is 600 s:
# a larger answer would time out and be retried. A policy raises no further without
# ``stream: true``.
NON_STREAMING_MAX_TOKENS = 21_333
DOCUMENT_MAX_TOKENS = 128_000  # POST /v1/documents' own bound (documents.mapreduce)
_UNIVERSAL_EFFORTS = EFFORTS[:3]  # every model that takes effort takes these


@dataclass(frozen=True, slots=True)
class Target:
    """Where the request goes: what decides which parameters it can carry."""

    route: PolicyRoute
    caps: ModelCaps | None
    version: str | None  # anthropic-version
    betas: str  # anthropic-beta, as sent
    # Room left for output: the context window minus the estimated input (asked only
    # when a rule raises max_tokens; it reads the whole body).
    output_room: Callable[[Mapping[str, Any]], int]

    @classmethod
    def of(
        cls, route: PolicyRoute, model: str | None, version: str | None, betas: str = ""
    ) -> Target:
        """The target of a request: the model's capabilities, and its context window
        minus the gateway's estimate of the input (which errs high) as the room."""

        def output_room(body: Mapping[str, Any]) -> int:
            return context_window(model, beta=betas) - estimate_input_tokens(body)

        return cls(route, capabilities(model), version, betas, output_room)


def apply_policies(
    body: Mapping[str, Any], rules: Sequence[PolicyRule], target: Target
) -> tuple[dict[str, Any] | None, PolicyReport]:
    """The body with the rules applied (None: unchanged) and what they did."""
    report = PolicyReport([rule.name for rule in rules])
    wanted = decide(body, rules, target.route)
    if not wanted:
        return None, report
    work = _Work(body, target, report)
    if (want := wanted.get("thinking_budget")) is not None:
        work.thinking(want)
    if (want := wanted.get("max_tokens")) is not None:
        work.max_tokens(want)
    work.reconcile()
    if (want := wanted.get("effort")) is not None:
        work.effort(want)
    for parameter in ("temperature", "top_p"):
        if (want := wanted.get(parameter)) is not None:
            work.sampling(parameter, want)
    return work.result()


class _Work:
    """One body being changed, and the record of what changed."""

    def __init__(self, body: Mapping[str, Any], target: Target, report: PolicyReport) -> None:
        self.original = body
        self.body = dict(body)
        self.target = target
        self.caps = target.caps
        self.report = report
        self.applied: dict[Parameter, Applied] = {}
        self.enabled_by: str | None = None  # the rule that turned thinking on

    # -- results --------------------------------------------------------------------

    def result(self) -> tuple[dict[str, Any] | None, PolicyReport]:
        order = {parameter: i for i, parameter in enumerate(PARAMETERS)}
        applied = sorted(self.applied.values(), key=lambda a: order[a.parameter])
        self.report.applied.extend(applied)
        return (self.body if applied else None), self.report

    def _apply(
        self, wanted: Wanted, parameter: Parameter, value: Any, note: str | None = None
    ) -> None:
        self.applied[parameter] = Applied(wanted.policy, parameter, value, wanted.action, note)

    def _skip(self, wanted: Wanted, parameter: Parameter, reason: str) -> None:
        self.report.skipped.append(Skipped(wanted.policy, parameter, reason))

    # -- thinking -------------------------------------------------------------------

    def thinking(self, wanted: Wanted) -> None:
        reason = self._thinking_refused(wanted.value)
        if reason is not None:
            self._skip(wanted, "thinking_budget", reason)
            return
        budget = wanted.value
        if self.caps is not None:
            budget = min(budget, self.caps.max_output - 1)
        thinking = self.body.get("thinking")
        if budget == current_value(self.body, "thinking_budget", "messages"):
            self._skip(wanted, "thinking_budget", "model")  # already at the model's limit
            return
        if thinking is None:
            self.enabled_by = wanted.policy
            self.body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        else:
            self.body["thinking"] = {**thinking, "budget_tokens": budget}
        self._apply(wanted, "thinking_budget", budget)

    def _thinking_refused(self, budget: int) -> str | None:
        if self.target.route == "documents":
            return "route"
        thinking = self.body.get("thinking")
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if thinking is not None and kind not in ("enabled", "adaptive", "disabled"):
            return "invalid"
        if kind == "enabled" and current_value(self.body, "thinking_budget", "messages") is None:
            return "invalid"
        if self.caps is None:
            current = current_value(self.body, "thinking_budget", "messages")
            return None if current is not None and budget < current else "unknown_model"
        if self.caps.thinking == "none":
            return "model"
        if self.caps.thinking == "adaptive" or kind == "adaptive":
            return "adaptive"
        if kind == "disabled":
            return "disabled"
        if kind is None:
            return self._enabling_refused()
        return None

    def _enabling_refused(self) -> str | None:
        """Why thinking cannot be turned on for this request (None: it can)."""
        messages = self.body.get("messages")
        if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
            return "invalid"
        last = messages[-1]
        if last.get("role") == "assistant":
            return "prefill"
        choice = self.body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
            return "tool_choice"
        if _in_tool_loop_without_thinking(messages):
            return "tool_loop"
        temperature, top_p = self.body.get("temperature"), self.body.get("top_p")
        if (
            (temperature is not None and temperature != 1)
            or (top_p is not None and not (is_number(top_p) and top_p >= 0.95))
            or self.body.get("top_k") is not None
        ):
            return "sampling"
        return None

    # -- max_tokens -----------------------------------------------------------------

    def max_tokens(self, wanted: Wanted) -> None:
        current = current_value(self.body, "max_tokens", self.target.route)
        if current is None:
            self._skip(wanted, "max_tokens", "invalid")
            return
        if current == 0:
            self._skip(wanted, "max_tokens", "warm_up")
            return
        value, note = wanted.value, None
        if value > current and self.caps is None:
            self._skip(wanted, "max_tokens", "unknown_model")
            return
        if value > current and self.target.route == "documents":
            # A larger answer may no longer fit beside a chunk: the gateway would refuse it.
            self._skip(wanted, "max_tokens", "route")
            return
        limit = self.caps.max_output if self.caps is not None else None
        if self.target.route == "documents":
            limit = min(limit or DOCUMENT_MAX_TOKENS, DOCUMENT_MAX_TOKENS)
        if limit is not None and value > limit:
            value, note = limit, "model limit"
        action = wanted.action
        ceiling = max(current, NON_STREAMING_MAX_TOKENS)
        if value > ceiling and self.body.get("stream") is not True:
            value, note, action = ceiling, "non-streaming", "fitted"
        if value > current:
            room = self.target.output_room(self.body)
            if value > room:
                value, note, action = max(current, room), "context limit", wanted.action
        if value == current:  # already at the limit
            reasons = {"model limit": "model", "non-streaming": "non_streaming"}
            self._skip(wanted, "max_tokens", reasons.get(note or "", "context"))
            return
        self.body["max_tokens"] = value
        self.applied["max_tokens"] = Applied(wanted.policy, "max_tokens", value, action, note)

    def reconcile(self) -> None:
        """Keep ``budget_tokens < max_tokens`` after either moved."""
        thinking = self.body.get("thinking")
        if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
            return
        budget = integer(thinking.get("budget_tokens"))
        ceiling = integer(self.body.get("max_tokens"))
        if budget is None or ceiling is None or budget < ceiling:
            return
        set_budget = self.applied.get("thinking_budget")
        set_max = self.applied.get("max_tokens")
        if self.enabled_by is not None:
            # Thinking the policy turned on gives way to max_tokens, or is not turned on.
            assert set_budget is not None
            if ceiling - 1 >= MIN_BUDGET:
                self._set_budget(ceiling - 1, set_budget, "below max_tokens")
            else:
                self.body.pop("thinking")
                del self.applied["thinking_budget"]
                self.report.skipped.append(
                    Skipped(set_budget.policy, "thinking_budget", "max_tokens")
                )
            return
        new_budget = max(MIN_BUDGET, min(budget, ceiling - 1))
        new_ceiling = max(ceiling, new_budget + 1)
        # An unknown model's ceiling is not known: never above what the client sent.
        limit = (
            self.caps.max_output
            if self.caps is not None
            else max(ceiling, current_value(self.original, "max_tokens", "messages") or 0)
        )
        if new_ceiling > limit:
            self._undo_thinking_and_max_tokens()
            return
        if new_budget != budget:
            if set_budget is not None:
                self._set_budget(new_budget, set_budget, "below max_tokens")
            elif set_max is not None:
                self.body["thinking"] = {**thinking, "budget_tokens": new_budget}
                self.applied["thinking_budget"] = Applied(
                    set_max.policy, "thinking_budget", new_budget, "fitted", "below max_tokens"
                )
        if new_ceiling != ceiling and set_max is not None:
            self.body["max_tokens"] = new_ceiling
            self.applied["max_tokens"] = Applied(
                set_max.policy, "max_tokens", new_ceiling, set_max.action, "above thinking budget"
            )

    def _set_budget(self, budget: int, applied: Applied, note: str) -> None:
        thinking = self.body["thinking"]
        self.body["thinking"] = {**thinking, "budget_tokens": budget}
        self.applied["thinking_budget"] = Applied(
            applied.policy, "thinking_budget", budget, applied.action, note
        )

    def _undo_thinking_and_max_tokens(self) -> None:
        undone: tuple[tuple[Parameter, str], ...] = (
            ("thinking_budget", "thinking"),
            ("max_tokens", "max_tokens"),
        )
        for parameter, key in undone:
            applied = self.applied.pop(parameter, None)
            if applied is None:
                continue
            if key in self.original:
                self.body[key] = self.original[key]
            else:
                self.body.pop(key, None)
            self.report.skipped.append(Skipped(applied.policy, applied.parameter, "max_tokens"))

    # -- effort ---------------------------------------------------------------------

    def effort(self, wanted: Wanted) -> None:
        config = self.body.get("output_config")
        if self.target.route == "documents":
            self._skip(wanted, "effort", "route")
            return
        if config is not None and not isinstance(config, dict):
            self._skip(wanted, "effort", "invalid")
            return
        level, note = wanted.value, None
        caps = self.caps
        current = config.get("effort") if config is not None else None
        if caps is None:
            if current is None or level not in _UNIVERSAL_EFFORTS:
                self._skip(wanted, "effort", "unknown_model")
                return
        elif not caps.efforts:
            self._skip(wanted, "effort", "model")
            return
        elif caps.effort_beta is not None and caps.effort_beta not in self.target.betas:
            self._skip(wanted, "effort", "beta")
            return
        elif level not in caps.efforts:
            rank = EFFORTS.index(level)
            level = max((e for e in caps.efforts if EFFORTS.index(e) <= rank), key=EFFORTS.index)
            note = "model level"
        if level == current:
            self._skip(wanted, "effort", "model")
            return
        self.body["output_config"] = {**(config or {}), "effort": level}
        self._apply(wanted, "effort", level, note)

    # -- sampling -------------------------------------------------------------------

    def sampling(self, parameter: Parameter, wanted: Wanted) -> None:
        reason = self._sampling_refused(parameter)
        if reason is not None:
            self._skip(wanted, parameter, reason)
            return
        self.body[parameter] = wanted.value
        self._apply(wanted, parameter, wanted.value)

    def _sampling_refused(self, parameter: Parameter) -> str | None:
        if self.target.route == "documents":
            return "route"
        sent = self.body.get(parameter)
        if sent is not None and not is_number(sent):
            return "invalid"
        thinking = self.body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
            return "thinking"
        if self.target.version != OLD_VERSION:
            return "version"
        caps = self.caps
        if caps is None:
            return None if sent is not None else "unknown_model"
        if not caps.sampling:
            return "model"
        other = "top_p" if parameter == "temperature" else "temperature"
        if caps.sampling_exclusive and self.body.get(other) is not None:
            return "exclusive"
        return None


def _in_tool_loop_without_thinking(messages: list[Any]) -> bool:
    """Whether the last assistant message calls a tool and does not start with a
    thinking block: with thinking on, the API refuses that ('a final assistant message
    must start with a thinking block'). Not only when the last message is the tool
    result: the API merges consecutive user messages, so a user turn after the result
    is still inside the loop."""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        content = message.get("content")
        if not isinstance(content, list) or not any(
            isinstance(block, dict) and block.get("type") == "tool_use" for block in content
        ):
            return False
        first = content[0]
        return not (
            isinstance(first, dict) and first.get("type") in ("thinking", "redacted_thinking")
        )
    return False
