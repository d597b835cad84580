"""Name globs in the configuration (``fnmatch`` patterns), checked when it is loaded.

``fnmatch`` never fails on a pattern: a ``[`` without its ``]`` is read as itself, and a
rule or an override written with one silently never matches. Every glob the
configuration takes goes through these checks, so such a mistake is refused at
start-up with its line.
"""

from __future__ import annotations

import re

__all__ = ["check_glob", "model_glob"]

_MODEL_GLOB = re.compile(r"[A-Za-z0-9_.:@/*?\[\]!-]+")


def check_glob(pattern: str) -> str:
    """A glob as ``fnmatch`` reads it; a ``[`` without its ``]`` is refused (fnmatch would
    take it literally, and the rule would silently never match)."""
    if not pattern:
        raise ValueError("a pattern must not be empty")
    depth = 0
    for char in pattern:
        if char == "[":
            if depth:
                raise ValueError(f"bad glob {pattern!r}: '[' inside [...]")
            depth = 1
        elif char == "]" and depth:
            depth = 0
    if depth:
        raise ValueError(f"bad glob {pattern!r}: '[' without its ']'")
    return pattern


def model_glob(pattern: str) -> str:
    """A glob of model names: the characters of a model id, and glob ones."""
    if not _MODEL_GLOB.fullmatch(pattern):
        raise ValueError(f"bad model glob {pattern!r}: letters, digits, . - _ : @ / * ? [ ] ! only")
    return check_glob(pattern)
