"""The ``pii:`` section: what to look for and what to do with it, for the gateway and per tenant.

```yaml
pii:
  mode: mask            # off | detect | mask | pseudonymize | block
  entities: [CREDIT_CARD, US_SSN, EMAIL, PHONE, CN_ID, IBAN, IP_ADDRESS, SECRET]
  entity_modes: {SECRET: block, IP_ADDRESS: detect}   # per entity type, over `mode`
  custom: [{name: EMPLOYEE_ID, pattern: 'EMP-\\d{6}'}]
  scan_responses: false
tenants:
  - name: support
    pii: {mode: pseudonymize}   # only the fields given replace the gateway's
```
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from claude_proxy.overlay import overlay
from claude_proxy.pii.detect import ENTITIES

__all__ = ["Mode", "PiiSettings", "merged"]

Mode = Literal["off", "detect", "mask", "pseudonymize", "block"]
_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,31}")


class CustomEntity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """Upper case (``EMPLOYEE_ID``): it names the entity in placeholders and metrics."""
    pattern: str
    """A Python regular expression; with a group, only group 1 is the value."""

    @field_validator("name")
    @classmethod
    def _placeholder_safe(cls, value: str) -> str:
        if not _NAME.fullmatch(value) or value in ENTITIES:
            raise ValueError(
                "a custom entity name is upper case letters, digits and _ (at most 32), "
                "and not a built-in entity's"
            )
        return value

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if compiled.match(""):
            raise ValueError("the pattern matches the empty string")
        return value


class PiiSettings(BaseModel):
    """Redaction of sensitive values in what goes upstream (and, optionally, back)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = "off"
    entities: list[str] = Field(default_factory=lambda: list(ENTITIES))
    entity_modes: dict[str, Mode] = Field(default_factory=dict)
    custom: list[CustomEntity] = Field(default_factory=list)
    scan_responses: bool = False
    """Also mask values found in answers (values the model produced, not restored ones)."""
    max_scan_chars: int = Field(default=10_000_000, ge=1)
    """A request with more text than this is refused, not sent unchecked (fails closed)."""

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        # YAML 1.1 (PyYAML) reads a bare `off` as false.
        return "off" if value is False else value

    @field_validator("entity_modes", mode="before")
    @classmethod
    def _yaml_offs(cls, value: object) -> object:
        if isinstance(value, dict):
            return {key: "off" if mode is False else mode for key, mode in value.items()}
        return value

    @field_validator("entities")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(ENTITIES))
        if unknown:
            raise ValueError(
                f"unknown entity types {unknown}; known: {', '.join(ENTITIES)} "
                "(and the names of `custom` entities)"
            )
        return value

    @field_validator("entity_modes")
    @classmethod
    def _entity_names(cls, value: dict[str, Mode]) -> dict[str, Mode]:
        # Whether each is known is checked with the gateway's settings (`unknown_names`):
        # a tenant may name a custom entity the gateway defines.
        bad = sorted(name for name in value if not _NAME.fullmatch(name))
        if bad:
            raise ValueError(f"entity_modes: {bad} are not entity type names (upper case)")
        return value

    def unknown_names(self) -> list[str]:
        """entity_modes keys that name no built-in or custom entity type."""
        names = set(ENTITIES) | {custom.name for custom in self.custom}
        return sorted(set(self.entity_modes) - names)

    def action(self, entity: str) -> Mode:
        return self.entity_modes.get(entity, self.mode)

    def scanned(self) -> list[str]:
        """The built-in entity types to look for (those whose action is not off)."""
        named = [*self.entities, *(e for e in self.entity_modes if e in ENTITIES)]
        return sorted({entity for entity in named if self.action(entity) != "off"})

    @property
    def active(self) -> bool:
        """Whether anything is scanned at all."""
        if self.mode != "off":
            return True
        return any(mode != "off" for mode in self.entity_modes.values())


def merged(base: PiiSettings, override: PiiSettings | None) -> PiiSettings:
    """A tenant's settings: the fields it sets over the gateway's. ``entity_modes`` and
    ``custom`` are merged name by name, so a tenant that sets one entity's mode keeps
    the gateway's rules for the others (a blocked SECRET stays blocked)."""
    if override is None:
        return base
    own = {custom.name for custom in override.custom}
    return overlay(
        base,
        override,
        entity_modes={**base.entity_modes, **override.entity_modes},
        custom=[*(c for c in base.custom if c.name not in own), *override.custom],
    )
