"""Settings that derive from others."""

from __future__ import annotations

from claude_proxy.config import Settings


def test_replay_keys_follow_the_admission_prefix() -> None:
    # Two gateways sharing one Redis by prefix must share neither admission nor replay keys.
    team = Settings.model_validate({"admission": {"key_prefix": "team-x:admission:"}})
    assert team.replay_settings.key_prefix == "team-x:replay:"
    other = Settings.model_validate({"admission": {"key_prefix": "{other}:"}})
    assert other.replay_settings.key_prefix == "{other}:replay:"
    assert Settings().replay_settings.key_prefix == "claude-proxy:replay:"


def test_an_explicit_replay_prefix_is_kept() -> None:
    settings = Settings.model_validate(
        {
            "admission": {"key_prefix": "team-x:admission:"},
            "streams": {"replay": {"key_prefix": "mine:"}},
        }
    )
    assert settings.replay_settings.key_prefix == "mine:"


def test_changing_one_replay_setting_keeps_the_other_defaults() -> None:
    settings = Settings.model_validate({"streams": {"replay": {"ttl_seconds": 60}}})
    assert settings.streams.replay.max_bytes == Settings().streams.replay.max_bytes
