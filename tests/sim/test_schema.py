"""The simulator's schema instances on schemas clients may really send, odd ones included."""

from __future__ import annotations

import random
from typing import Any

import pytest

from claude_proxy.sim.schema import instance


@pytest.mark.parametrize(
    ("schema", "check"),
    [
        # JSON Schema allows true/false as a sub-schema: no constraint, never a crash (a 500).
        ({"anyOf": [True, {"type": "integer"}]}, lambda v: v is not None),
        ({"allOf": [True, {"type": "integer"}]}, lambda v: isinstance(v, int)),
        ({"oneOf": [{"type": "null"}, False]}, lambda v: True),
        # Counts that are not integers are ignored, not fed to int().
        ({"type": "array", "minItems": "x", "items": {"type": "integer"}}, lambda v: len(v) == 1),
        ({"type": "array", "minItems": 3, "maxItems": True}, lambda v: len(v) == 3),
    ],
)
def test_odd_schemas_still_give_a_value(schema: dict[str, Any], check: Any) -> None:
    assert check(instance(schema, random.Random(0)))
