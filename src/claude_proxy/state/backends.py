"""Backends named by URL scheme, imported only when chosen (uvicorn's lazy tables)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

__all__ = ["load_backend"]


def load_backend(
    backends: Mapping[str, str], scheme: str, *, extra: str = "redis", what: str = "state"
) -> Any:
    """The class ``backends[scheme]`` names as ``"module:Class"``, imported now.

    A backend whose optional dependency is missing says which ``extra`` to install.
    """
    module_name, _, class_name = backends[scheme].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        install = f"pip install 'claude-proxy[{extra}]'" if extra else "pip install claude-proxy"
        raise RuntimeError(f"{what} {scheme}:// needs {exc.name!r}: {install}") from exc
    return getattr(module, class_name)
