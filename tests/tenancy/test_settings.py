from __future__ import annotations

import pytest
from pydantic import ValidationError

from claude_proxy.tenancy import AdmissionSettings


def test_defaults() -> None:
    settings = AdmissionSettings()
    assert settings.state == "memory://"
    assert settings.upstream_max_concurrent == 64
    assert settings.lease_seconds == 30
    assert settings.decrease_factor == 0.5


@pytest.mark.parametrize(
    "fields",
    [
        {"state": "postgres://x"},
        {"window_min": 10, "upstream_max_concurrent": 5},
        {"decrease_factor": 1.0},
        {"lease_seconds": 0},
        {"unknown": 1},
    ],
)
def test_invalid(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AdmissionSettings.model_validate(fields)


def test_redis_url_is_accepted() -> None:
    assert AdmissionSettings(state="redis://127.0.0.1:6379/0").state.startswith("redis://")
