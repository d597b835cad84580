"""What each matched rule wants: per parameter, the first rule that names it decides.

``set`` gives its value; otherwise ``default`` fills a value the body lacks and ``clamp``
bounds the value there is (the client's or the default). A wish equal to what the body
already holds is no wish. Nothing here knows models: ``policies.apply`` fits the wishes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from claude_proxy.policies.capabilities import EFFORTS
from claude_proxy.policies.report import Action
from claude_proxy.policies.settings import PARAMETERS, Parameter, PolicyRoute, PolicyRule

__all__ = ["Wanted", "current_value", "decide", "integer", "is_number"]


class Wanted(NamedTuple):
    """A value a rule wants for one parameter, and how it came to want it."""

    policy: str
    value: Any
    action: Action


def decide(
    body: Mapping[str, Any], rules: Sequence[PolicyRule], route: PolicyRoute
) -> dict[Parameter, Wanted]:
    """Per parameter, the value its first rule wants, where that differs from the body's."""
    wanted: dict[Parameter, Wanted] = {}
    for parameter in PARAMETERS:
        rule = next((rule for rule in rules if rule.mentions(parameter)), None)
        if rule is None:
            continue
        current = current_value(body, parameter, route)
        value: Any = getattr(rule.set, parameter)
        action: Action | None = "set" if value is not None else None
        if value is None:
            value = current
            default = getattr(rule.default, parameter)
            if value is None and default is not None:
                value, action = default, "default"
            bounds = getattr(rule.clamp, parameter)
            if bounds is not None and value is not None:
                clamped = _clamp(parameter, value, bounds.min, bounds.max)
                if clamped != value:
                    value, action = clamped, "clamped"
        if action is not None and value != current:
            wanted[parameter] = Wanted(rule.name, value, action)
    return wanted


def _clamp(parameter: Parameter, value: Any, low: Any, high: Any) -> Any:
    if parameter == "effort":
        if value not in EFFORTS:
            return value  # the client's own unknown level: the API will say so
        rank = EFFORTS.index(value)
        if low is not None and rank < EFFORTS.index(low):
            return low
        if high is not None and rank > EFFORTS.index(high):
            return high
        return value
    if low is not None and value < low:
        return low
    if high is not None and value > high:
        return high
    return value


def current_value(body: Mapping[str, Any], parameter: Parameter, route: PolicyRoute) -> Any:
    """The value the body carries for ``parameter`` (None: none, or not a valid one)."""
    if parameter == "thinking_budget":
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") == "enabled":
            return integer(thinking.get("budget_tokens"))
        return None
    if parameter == "max_tokens":
        if route == "documents" and "max_tokens" not in body:
            return 1024  # the document request's default
        return integer(body.get("max_tokens"))
    if parameter == "effort":
        config = body.get("output_config")
        return config.get("effort") if isinstance(config, dict) else None
    value = body.get(parameter)
    return value if is_number(value) else None


def integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
