"""The pii: section as users write it in YAML, and a tenant's override."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from claude_proxy.config import Settings, UpstreamSettings, load_settings
from claude_proxy.pii.settings import PiiSettings, merged

README = Path(__file__).resolve().parents[2] / "README.md"


def test_yaml_off_is_off(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("pii: {mode: off, entity_modes: {EMAIL: off, SECRET: block}}\n")
    pii = load_settings(config).pii
    assert pii.mode == "off" and pii.entity_modes == {"EMAIL": "off", "SECRET": "block"}
    assert pii.active and pii.scanned() == ["SECRET"]


def test_the_readme_example_is_valid() -> None:
    block = re.search(r"```yaml\n(pii:\n.*?)```", README.read_text(), re.S)
    assert block is not None
    loaded = yaml.safe_load(block.group(1))
    pii = PiiSettings(**loaded["pii"])
    assert pii.action("SECRET") == "block" and pii.action("EMAIL") == "mask"
    tenant = merged(pii, PiiSettings(**loaded["tenants"][0]["pii"]))
    # Only what the tenant sets replaces the gateway's: its secrets are still blocked.
    assert tenant.action("EMAIL") == "pseudonymize" and tenant.action("SECRET") == "block"
    assert [c.name for c in tenant.custom] == ["EMPLOYEE_ID"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"entities": ["PASSPORT"]}, "unknown entity types"),
        ({"entity_modes": {"passport": "mask"}}, "not entity type names"),
        ({"mode": "redact"}, "mode"),
        ({"custom": [{"name": "lower", "pattern": "x"}]}, "upper case"),
        ({"custom": [{"name": "EMAIL", "pattern": "x"}]}, "built-in"),
        ({"custom": [{"name": "BAD", "pattern": "("}]}, "regular expression"),
        ({"custom": [{"name": "EMPTY", "pattern": "a*"}]}, "empty string"),
    ],
)
def test_bad_settings_are_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PiiSettings(**fields)  # type: ignore[arg-type]


def test_entity_modes_must_name_known_types_in_the_gateway_and_each_tenant() -> None:
    with pytest.raises(ValidationError, match=r"pii.entity_modes names unknown .*PASSPORT"):
        Settings(pii=PiiSettings(entity_modes={"PASSPORT": "mask"}))
    custom = [{"name": "EMPLOYEE_ID", "pattern": "EMP-[0-9]{6}"}]
    tenants = [{"name": "a", "keys": ["k"], "pii": {"entity_modes": {"EMPLOYEE_ID": "block"}}}]
    upstreams = [UpstreamSettings(api_key="sk-up")]
    # A tenant may name the gateway's custom entity...
    Settings(pii=PiiSettings(custom=custom), tenants=tenants, upstreams=upstreams)
    # ... but not one nobody defines.
    with pytest.raises(ValidationError, match=r"tenants\[a\].pii.entity_modes"):
        Settings(tenants=tenants, upstreams=upstreams)


def test_a_tenant_override_keeps_the_gateways_other_entity_rules() -> None:
    gateway = PiiSettings(mode="mask", entity_modes={"SECRET": "block"})
    tenant = merged(gateway, PiiSettings(entity_modes={"EMAIL": "pseudonymize"}))
    assert tenant.action("SECRET") == "block" and tenant.action("EMAIL") == "pseudonymize"
    assert tenant.action("CN_ID") == "mask"
