"""One settings section over another: the fields a tenant's own section sets win."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

__all__ = ["overlay"]

_Model = TypeVar("_Model", bound=BaseModel)


def overlay(base: _Model, override: BaseModel | None, **merged: object) -> _Model:
    """``base`` with the fields ``override`` sets (``model_fields_set``) over it;
    ``merged``: values for fields the caller combined itself (a dict merged key by key),
    used only for the fields ``override`` sets."""
    if override is None:
        return base
    fields = {name: getattr(override, name) for name in override.model_fields_set}
    fields.update({name: value for name, value in merged.items() if name in fields})
    return base.model_copy(update=fields)
