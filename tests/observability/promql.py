"""A small PromQL checker for the deploy files: tokens, balance, functions, metric names.

Not a parser: no well-kept PromQL parser exists on PyPI, and promtool is a Go
binary. It tokenises an expression the way Prometheus's lexer does, checks that
brackets balance and nest sensibly, that every called function exists, that
range selectors have a valid duration, and returns the metric names selected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PromQLError", "check_expression"]

FUNCTIONS = frozenset(
    {
        "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp",
        "clamp_max", "clamp_min", "count_over_time", "delta", "deriv", "exp", "floor",
        "histogram_quantile", "holt_winters", "idelta", "increase", "irate", "label_join",
        "label_replace", "last_over_time", "ln", "log2", "log10", "max_over_time",
        "min_over_time", "predict_linear", "quantile_over_time", "rate", "resets", "round",
        "scalar", "sort", "sort_desc", "sqrt", "stddev_over_time", "sum_over_time", "time",
        "timestamp", "vector",
    }
)  # fmt: skip
AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
     "count_values", "group"}
)  # fmt: skip
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
     "unless", "offset"}
)  # fmt: skip
_GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<duration>\[\s*(?:\d+(?:ms|[smhdwy]))+\s*(?::\s*(?:\d+(?:ms|[smhdwy]))*\s*)?\]
                 |\[\s*\$__(?:rate_interval|interval|range)\s*\])
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>==|!=|=~|!~|>=|<=|[-+*/%^<>=,])
  | (?P<open>[({])
  | (?P<close>[)}])
    """,
    re.VERBOSE,
)


class PromQLError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str


def _tokens(expr: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if match is None or match.lastgroup is None:
            raise PromQLError(f"unexpected {expr[pos : pos + 20]!r} at {pos} in {expr!r}")
        if match.lastgroup != "ws":
            out.append(_Token(match.lastgroup, match.group()))
        pos = match.end()
    return out


def check_expression(expr: str) -> set[str]:
    """The metric names ``expr`` selects; raises PromQLError if it is malformed."""
    tokens = _tokens(expr)
    stack: list[str] = []  # "(" "{" with a tag: call, group, selector
    names: set[str] = set()
    for i, token in enumerate(tokens):
        previous = tokens[i - 1] if i else None
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if token.kind == "open":
            stack.append(_open_kind(token, previous))
        elif token.kind == "close":
            if not stack or stack[-1][0] != {")": "(", "}": "{"}[token.text]:
                raise PromQLError(f"unbalanced {token.text!r} in {expr!r}")
            stack.pop()
        elif token.kind == "duration":
            if previous is None or not (previous.kind == "ident" or previous.text in {"}", ")"}):
                raise PromQLError(f"range {token.text} follows nothing selectable in {expr!r}")
        elif token.kind == "ident":
            inside = stack[-1] if stack else ""
            if inside in {"{selector", "(grouping"}:
                continue  # a label name
            called = nxt is not None and nxt.text == "("
            if token.text in KEYWORDS:
                continue
            if called and token.text not in FUNCTIONS | AGGREGATIONS:
                raise PromQLError(f"unknown function {token.text}() in {expr!r}")
            if token.text in AGGREGATIONS and nxt is not None and nxt.text in _GROUPING:
                continue
            if not called:
                names.add(token.text)
    if stack:
        raise PromQLError(f"unclosed {stack[-1]} in {expr!r}")
    if not names and "time" not in expr:
        raise PromQLError(f"selects no metric: {expr!r}")
    return names


def _open_kind(token: _Token, previous: _Token | None) -> str:
    if token.text == "{":
        return "{selector"
    if previous is not None and previous.text in _GROUPING:
        return "(grouping"
    return "(call" if previous is not None and previous.kind == "ident" else "(group"
