from __future__ import annotations

import pytest
from pydantic import ValidationError

from claude_proxy.errors import AuthenticationFailed, PermissionDenied
from claude_proxy.tenancy import TenantDirectory, TenantSettings

KEY_A = "sk-team-a-0123456789"
KEY_B = "sk-team-b-9876543210"


def settings(name: str, *keys: str, **fields: object) -> TenantSettings:
    return TenantSettings.model_validate({"name": name, "keys": list(keys), **fields})


def directory() -> TenantDirectory:
    return TenantDirectory.from_settings(
        [
            settings("a", KEY_A, models=["claude-sonnet-*", "claude-haiku-4-5"]),
            settings("b", "sk-other", KEY_B),
        ]
    )


def test_x_api_key_and_bearer_both_authenticate() -> None:
    tenants = directory()
    assert tenants.authenticate({"x-api-key": KEY_A}).name == "a"
    assert tenants.authenticate({"authorization": f"Bearer {KEY_B}"}).name == "b"
    assert tenants.authenticate({"authorization": f"bearer  {KEY_B}"}).name == "b"


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-api-key": "sk-wrong"}, {"authorization": f"Basic {KEY_A}"}, {"x-api-key": ""}],
)
def test_missing_or_unknown_key_is_401(headers: dict[str, str]) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        directory().authenticate(headers)
    assert caught.value.status == 401
    assert KEY_A not in caught.value.message


def test_models_are_matched_by_glob() -> None:
    tenants = directory()
    team_a = tenants.authenticate({"x-api-key": KEY_A})
    tenants.authorize_model(team_a, "claude-sonnet-4-5")
    tenants.authorize_model(team_a, "claude-haiku-4-5")
    with pytest.raises(PermissionDenied) as caught:
        tenants.authorize_model(team_a, "claude-opus-4-1")
    assert caught.value.status == 403
    tenants.authorize_model(tenants.authenticate({"x-api-key": KEY_B}), "anything")


def test_key_shared_by_two_tenants_is_rejected_without_showing_it() -> None:
    with pytest.raises(ValueError, match="also belongs to tenant 'a'") as caught:
        TenantDirectory.from_settings(
            [
                settings("a", KEY_A),
                settings("b", KEY_B, KEY_A),
            ]
        )
    assert KEY_A not in str(caught.value)


def test_tenant_names_are_unique() -> None:
    with pytest.raises(ValueError, match="used twice"):
        TenantDirectory.from_settings(
            [
                settings("a", KEY_A),
                settings("a", KEY_B),
            ]
        )


def test_keys_never_appear_in_reprs_or_validation_errors() -> None:
    tenants = directory()
    tenant = tenants.authenticate({"x-api-key": KEY_A})
    for text in (repr(tenants), repr(tenant), str(tenant), repr(tenant.settings)):
        assert KEY_A not in text
    with pytest.raises(ValidationError) as caught:
        TenantSettings.model_validate({"name": "a", "keys": [KEY_A], "weight": 0, "x": KEY_B})
    assert KEY_A not in str(caught.value) and KEY_B not in str(caught.value)


def test_settings_validation() -> None:
    with pytest.raises(ValidationError):
        settings("a")
    with pytest.raises(ValidationError):
        settings("a", KEY_A, weight=0)
    one = settings("a", KEY_A)
    assert one.models == ["*"] and one.weight == 1.0 and one.queue_timeout == 10


def test_without_tenants_the_gateway_is_open() -> None:
    tenants = TenantDirectory.from_settings([])
    assert tenants.is_open
    tenant = tenants.authenticate({})
    assert tenant.name == "default"
    tenants.authorize_model(tenant, "claude-opus-4-1")
