from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from claude_proxy.cli import main
from claude_proxy.config import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    return path


def test_no_file_gives_safe_defaults() -> None:
    settings = load_settings(None, env={})
    assert (settings.listen.host, settings.listen.port) == ("127.0.0.1", 8000)
    assert settings.primary.base_url == "https://api.anthropic.com"
    assert settings.primary.api_key is None


def test_empty_file_is_valid(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, ""), env={}).listen.port == 8000


def test_variables_are_interpolated_with_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "listen:\n  port: ${PORT:-9100}\nupstreams:\n"
        "  - base_url: http://127.0.0.1:1\n    api_key: ${KEY}\n",
    )
    settings = load_settings(path, env={"KEY": "sk-secret"})
    assert settings.listen.port == 9100
    assert settings.primary.api_key is not None
    assert settings.primary.api_key.get_secret_value() == "sk-secret"


def test_missing_variable_names_variable_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "upstreams:\n  - name: a\n    api_key: ${MISSING_KEY}\n")
    with pytest.raises(ConfigError, match=r"line 3: environment variable MISSING_KEY is not set"):
        load_settings(path, env={})


def test_bad_field_is_reported_with_its_line_and_without_secret_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "listen:\n  port: 8000\nupstreams:\n  - name: a\n    api_key: ${KEY}\n"
        "    base_url: ftp://example\n  - name: b\n    wieght: 2\n",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={"KEY": "sk-very-secret"})
    message = str(info.value)
    assert "line 6: upstreams.0.base_url" in message
    assert "line 8: upstreams.1.wieght: unknown setting; did you mean 'weight'?" in message
    assert "sk-very-secret" not in message


def test_wrong_type_names_field_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "listen:\n  host: 127.0.0.1\n  port: eighty\n")
    with pytest.raises(ConfigError, match=r"line 3: listen.port"):
        load_settings(path, env={})


def test_environment_key_fills_upstreams_without_one(tmp_path: Path) -> None:
    path = write(tmp_path, "upstreams:\n  - {name: a, api_key: own}\n  - {name: b}\n")
    settings = load_settings(path, env={"ANTHROPIC_API_KEY": "from-env"})
    keys = [u.api_key.get_secret_value() for u in settings.upstreams if u.api_key]
    assert keys == ["own", "from-env"]


def test_command_line_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "listen: {host: 0.0.0.0, port: 9000}\n")
    settings = load_settings(
        path, env={}, host="127.0.0.2", port=9001, upstream="http://127.0.0.1:9"
    )
    assert (settings.listen.host, settings.listen.port) == ("127.0.0.2", 9001)
    assert settings.primary.base_url == "http://127.0.0.1:9"


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "listen: {port: 9200}\n")
    assert load_settings(None, env={"CLAUDE_PROXY_CONFIG": str(path)}).listen.port == 9200


def test_invalid_yaml_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "listen: [unclosed\n"), env={})


def test_check_config_command(tmp_path: Path) -> None:
    runner = CliRunner()
    good = write(tmp_path, "listen: {port: 9000}\n")
    result = runner.invoke(main, ["check-config", str(good)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output

    bad = tmp_path / "bad.yaml"
    bad.write_text("listen:\n  port: 70000\n")
    result = runner.invoke(main, ["check-config", str(bad)])
    assert result.exit_code == 2
    assert "line 2: listen.port" in result.output


EVERYTHING_WRONG = """\
workers: 2
upstreams:
  - name: a
    api_key: "${NOPE_ONE}"
  - {name: b, base_url: ftp://x, api_key: "${NOPE_TWO}"}
retry:
  max_attemps: 3
  base_delay: -1
timeouts: {connect: 5}
timeouts: {read: 10}
"""


def test_every_problem_is_reported_in_one_run_in_line_order(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, EVERYTHING_WRONG), env={})
    lines = [line.split(": ", 1)[1] for line in str(info.value).splitlines()]
    assert lines == [
        "line 1: workers: workers above 1 need a shared state: set state: redis://host:port/db",
        "line 4: environment variable NOPE_ONE is not set (write ${NOPE_ONE:-} to allow it unset)",
        "line 5: environment variable NOPE_TWO is not set (write ${NOPE_TWO:-} to allow it unset)",
        "line 7: retry.max_attemps: unknown setting; did you mean 'max_attempts'?",
        "line 8: retry.base_delay: Input should be greater than or equal to 0",
        "line 10: timeouts: given twice (first on line 9)",
    ]


def test_a_key_given_twice_is_refused_even_when_all_else_is_valid(tmp_path: Path) -> None:
    path = write(tmp_path, "listen:\n  port: 9000\n  host: 0.0.0.0\n  port: 9001\n")
    with pytest.raises(ConfigError, match=r"line 4: listen.port: given twice \(first on line 2\)"):
        load_settings(path, env={})


def readme_config() -> str:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("## Configuration") :]
    found = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert found is not None
    return found.group(1)


def test_the_readme_configuration_is_valid(tmp_path: Path) -> None:
    variables = ("ANTHROPIC_API_KEY", "SECOND_KEY", "TEAM_A_KEY", "OPERATOR_KEY")
    path = write(tmp_path, readme_config())
    settings = load_settings(path, env={name: f"sk-{name.lower()}" for name in variables})
    assert [u.name for u in settings.upstreams] == ["primary", "second-key"]
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert [name for name in variables if f"variable {name} is not set" in str(info.value)] == list(
        variables
    )


def test_an_empty_api_key_is_no_key_so_tenants_still_need_one(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'upstreams:\n  - {name: a, api_key: ""}\ntenants:\n  - {name: t, keys: [sk-tenant]}\n',
    )
    with pytest.raises(ConfigError, match="every upstream needs an api_key"):
        load_settings(path, env={})
