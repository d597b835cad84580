"""The ``policies:`` settings: rules that set or clamp generation parameters.

A rule has a ``name`` (reported in the ``x-proxy-policy`` header and the metrics), a
``match`` (every criterion given must hold; none given matches every request) and what it
does to each parameter: ``set`` (always that value), ``default`` (that value when the
client sent none) and ``clamp`` (``{min, max}`` bounds on the value the request carries,
the client's or the default). A parameter is in at most one of ``set`` and
``default``/``clamp`` of a rule; a default must lie within the same rule's clamp.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from claude_proxy.globs import check_glob, model_glob
from claude_proxy.policies.capabilities import EFFORTS
from claude_proxy.policies.task import Task

__all__ = [
    "PARAMETERS",
    "Clamps",
    "Effort",
    "Match",
    "Parameter",
    "PolicyRule",
    "Values",
    "check_policies",
]

Parameter = Literal["thinking_budget", "max_tokens", "effort", "temperature", "top_p"]
# The order a request's parameters are decided in: thinking first (it rules out sampling
# and bounds max_tokens), temperature before top_p (some models take only one).
PARAMETERS: tuple[Parameter, ...] = (
    "thinking_budget",
    "max_tokens",
    "effort",
    "temperature",
    "top_p",
)
Effort = Literal["low", "medium", "high", "xhigh", "max"]
PolicyRoute = Literal["messages", "documents"]

# Policy names become metric labels and header text.
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")
# Rules never look at credentials: a key in the config file would be a second copy of it.
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "cookie", "proxy-authorization"})


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def _listed(value: Any) -> Any:
    """One name where a list is expected is a list of one."""
    return [value] if isinstance(value, str) else value


Names = Annotated[list[str], BeforeValidator(_listed), Field(min_length=1)]


class TurnRange(_Section):
    """Turn numbers (1: the conversation's first user turn), both ends included."""

    min: int | None = Field(default=None, ge=1)
    max: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> TurnRange:
        _check_range(self.min, self.max)
        return self


class Match(_Section):
    """Which requests a rule applies to; every criterion given must hold."""

    tenants: Names | None = None
    models: Names | None = None  # globs (fnmatch, case-sensitive)
    routes: Annotated[list[PolicyRoute], BeforeValidator(_listed)] | None = None
    tasks: Annotated[list[Task], BeforeValidator(_listed)] | None = None
    turns: TurnRange | None = None
    # body.metadata fields (the API knows user_id) -> glob of their string value.
    metadata: dict[str, str] | None = None
    # request headers (names case-insensitive) -> glob of their value.
    headers: dict[str, str] | None = None

    @field_validator("models")
    @classmethod
    def _globs(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [model_glob(pattern) for pattern in value]

    @field_validator("metadata")
    @classmethod
    def _metadata_globs(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None:
            for pattern in value.values():
                check_glob(pattern)
        return value

    @field_validator("headers")
    @classmethod
    def _header_globs(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        headers = {}
        for name, pattern in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"bad header name {name!r}")
            if name.lower() in _SECRET_HEADERS:
                raise ValueError(
                    f"rules do not match on {name!r} (a credential); match on tenants instead"
                )
            headers[name.lower()] = check_glob(pattern)
        return headers


class Values(_Section):
    """Values a rule sets (``set``) or gives when the client sent none (``default``)."""

    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    # Above a model's own ceiling it is applied as that ceiling.
    max_tokens: int | None = Field(default=None, ge=1)
    thinking_budget: int | None = Field(default=None, ge=1024)
    effort: Effort | None = None

    def given(self) -> dict[str, Any]:
        return {name: value for name, value in self if value is not None}


class NumberRange(_Section):
    min: float | None = Field(default=None, ge=0, le=1)
    max: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> NumberRange:
        _check_range(self.min, self.max)
        return self


class TokenRange(_Section):
    min: int | None = Field(default=None, ge=1)
    max: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> TokenRange:
        _check_range(self.min, self.max)
        return self


class BudgetRange(_Section):
    min: int | None = Field(default=None, ge=1024)
    max: int | None = Field(default=None, ge=1024)

    @model_validator(mode="after")
    def _ordered(self) -> BudgetRange:
        _check_range(self.min, self.max)
        return self


class EffortRange(_Section):
    min: Effort | None = None
    max: Effort | None = None

    @model_validator(mode="after")
    def _ordered(self) -> EffortRange:
        low = None if self.min is None else EFFORTS.index(self.min)
        high = None if self.max is None else EFFORTS.index(self.max)
        _check_range(low, high, self.min, self.max)
        return self


def _check_range(
    low: float | None, high: float | None, shown_low: Any = None, shown_high: Any = None
) -> None:
    if low is None and high is None:
        raise ValueError("give min, max or both")
    if low is not None and high is not None and low > high:
        shown = (shown_low, shown_high) if shown_low is not None else (low, high)
        raise ValueError(f"min ({shown[0]}) is above max ({shown[1]})")


class Clamps(_Section):
    """Bounds on the values a request carries."""

    temperature: NumberRange | None = None
    top_p: NumberRange | None = None
    max_tokens: TokenRange | None = None
    thinking_budget: BudgetRange | None = None
    effort: EffortRange | None = None

    def given(self) -> dict[str, Any]:
        return {name: value for name, value in self if value is not None}


class PolicyRule(_Section):
    """One rule of ``policies:``."""

    name: str
    match: Match = Match()
    set: Values = Values()
    default: Values = Values()
    clamp: Clamps = Clamps()

    @field_validator("name")
    @classmethod
    def _label_safe(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("a policy name is 1-64 letters, digits, '_', '.', ':' or '-'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PolicyRule:
        sets, defaults, clamps = self.set.given(), self.default.given(), self.clamp.given()
        if not (sets or defaults or clamps):
            raise ValueError(f"policy {self.name!r} changes nothing: give set, default or clamp")
        if both := sorted(set(sets) & (set(defaults) | set(clamps))):
            raise ValueError(
                f"policy {self.name!r}: {', '.join(both)} is in set and in default/clamp; "
                "set decides alone"
            )
        for name, value in defaults.items():
            bounds = clamps.get(name)
            if bounds is not None and not _within(name, value, bounds):
                raise ValueError(
                    f"policy {self.name!r}: default {name} {value} is outside its clamp"
                )
        return self

    def mentions(self, parameter: Parameter) -> bool:
        return (
            getattr(self.set, parameter) is not None
            or getattr(self.default, parameter) is not None
            or getattr(self.clamp, parameter) is not None
        )


def _within(name: str, value: Any, bounds: Any) -> bool:
    order = EFFORTS.index if name == "effort" else (lambda v: v)
    if bounds.min is not None and order(value) < order(bounds.min):
        return False
    return not (bounds.max is not None and order(value) > order(bounds.max))


def check_policies(policies: list[PolicyRule], tenant_names: set[str] | None) -> None:
    """Rules between the policies and the rest: unique names, known tenants (when
    ``tenant_names`` is known). Every problem is reported, in one message."""
    problems = []
    seen: set[str] = set()
    for rule in policies:
        if rule.name in seen:
            problems.append(f"policy name {rule.name!r} is used twice")
        seen.add(rule.name)
        unknown = sorted(set(rule.match.tenants or ()) - (tenant_names or set()))
        if tenant_names is not None and unknown:
            problems.append(
                f"policy {rule.name!r} names unknown tenants {unknown} "
                f"(configured: {sorted(tenant_names)})"
            )
    if problems:
        raise ValueError("; ".join(problems))
