"""A deterministic JSON value valid against a JSON schema: tool inputs and structured output.

It covers what structured outputs and tool schemas use: types (and type lists), ``enum``,
``const``, ``required`` properties, local ``$ref`` (``#/$defs/...``, as pydantic writes),
``anyOf`` / ``oneOf`` / ``allOf``, string and array lengths, number bounds, and a few
string formats. A property not required is left out, as a model would often do.
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["instance"]

SAMPLE_WORDS = ("Paris", "alpha", "blue", "report", "north", "seven", "garden", "omega")
_FORMATS = {
    "date": "2026-01-15",
    "date-time": "2026-01-15T09:30:00Z",
    "time": "09:30:00",
    "email": "someone@example.com",
    "uri": "https://example.com/",
    "uuid": "3f2b8c4e-9d1a-4f6b-8c2d-5e7a9b1c3d4f",
}
_MAX_DEPTH = 16


def instance(
    schema: Any, rng: random.Random, name: str = "value", root: Any = None, depth: int = 0
) -> Any:
    """A value for ``schema`` (``root``: where ``$ref``s resolve; the schema itself)."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return rng.choice(SAMPLE_WORDS)
    if isinstance(schema.get("$ref"), str):
        return instance(_resolve(schema["$ref"], root), rng, name, root, depth + 1)
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            # A sub-schema may be a bare true/false (JSON Schema allows it): no constraint.
            chosen = next(
                (o for o in options if not isinstance(o, dict) or o.get("type") != "null"),
                options[0],
            )
            return instance(chosen, rng, name, root, depth + 1)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            if isinstance(part, dict) and isinstance(part.get("$ref"), str):
                part = _resolve(part["$ref"], root)
            if isinstance(part, dict):
                merged = _merge(merged, part)
        return instance(merged, rng, name, root, depth + 1)
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        return _object(schema, rng, root, depth)
    if kind == "array":
        count = max(1, _count(schema.get("minItems"), 1))
        count = min(count, _count(schema.get("maxItems"), count))
        return [instance(schema.get("items"), rng, name, root, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number(schema, rng, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, name, rng)


def _object(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        properties = {}
    required = schema.get("required")
    names = [n for n in required if isinstance(n, str)] if isinstance(required, list) else []
    return {n: instance(properties.get(n), rng, n, root, depth + 1) for n in names}


def _number(schema: dict[str, Any], rng: random.Random, *, integer: bool) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum", 1))
    high = schema.get("maximum", schema.get("exclusiveMaximum", max(100, low + 1)))
    if "exclusiveMinimum" in schema and "minimum" not in schema:
        low += 1 if integer else 0.01
    if "exclusiveMaximum" in schema and "maximum" not in schema:
        high -= 1 if integer else 0.01
    if integer:
        return rng.randint(int(low), max(int(low), int(high)))
    return round(rng.uniform(low, high), 2)


def _string(schema: dict[str, Any], name: str, rng: random.Random) -> str:
    value = _FORMATS.get(str(schema.get("format")), f"{name}-{rng.choice(SAMPLE_WORDS)}")
    low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
    if len(value) < low:
        value += "x" * (low - len(value))
    if isinstance(high, int) and len(value) > high:
        value = value[:high]
    return value


def _count(value: Any, default: int) -> int:
    """A schema's item count, if it is one (client schemas are not validated this deep)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _resolve(ref: str, root: Any) -> Any:
    """A local reference (``#/$defs/Name``); anything else resolves to no constraint."""
    if not ref.startswith("#/"):
        return {}
    node = root
    for part in ref[2:].split("/"):
        if not isinstance(node, dict) or part not in node:
            return {}
        node = node[part]
    return node


def _merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    merged = {**left, **right}
    if "properties" in left or "properties" in right:
        merged["properties"] = {**left.get("properties", {}), **right.get("properties", {})}
        merged["required"] = [*left.get("required", []), *right.get("required", [])]
    return merged
