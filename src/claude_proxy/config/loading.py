"""Load Settings from a YAML file, the environment and command-line overrides.

This is the only module that reads ``os.environ``. Precedence, lowest first:
defaults, the YAML file, environment variables, command-line flags.

``${VAR}`` and ``${VAR:-default}`` inside YAML strings are replaced from the
environment, so secrets stay out of the file. Errors name the field and the line
of the file, never the value (it may be a secret). Every problem of a file is reported
in one run, in line order: unset variables, keys given twice, unknown keys (with the
nearest known one), bad values, and rules between fields.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from claude_proxy.config.settings import Settings, inconsistencies

__all__ = ["ConfigError", "load_settings", "worker_environment"]

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
CONFIG_ENV = "CLAUDE_PROXY_CONFIG"
API_KEY_ENV = "ANTHROPIC_API_KEY"
# prometheus_client reads it when first imported; the settings must name the same directory.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


_UNSET = "environment variable "


class ConfigError(Exception):
    """A configuration that cannot be used; the message says where and why."""


Problem = tuple[int | None, str]
"""A problem in a file: its line (None: not tied to one) and what is wrong."""


def load_settings(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    host: str | None = None,
    port: int | None = None,
    upstream: str | None = None,
    workers: int | None = None,
) -> Settings:
    """Build the Settings from a YAML file (optional), the environment and overrides."""
    env = os.environ if env is None else env
    path = path or env.get(CONFIG_ENV) or None
    data: dict[str, Any] = {}
    root: yaml.Node | None = None
    source = "<defaults>"
    problems: list[Problem] = []
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source}: cannot read: {exc}") from None
        root, data = _parse_yaml(text, source, env, problems)

    _apply_overrides(data, env, host=host, port=port, upstream=upstream)
    if workers is not None:
        data["workers"] = workers
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        fields = _validation_problems(exc, root)
        # The rules between fields run only once every field is valid: they are checked
        # on what was written, so that they are heard in the same run, with a line.
        rules = _raw_inconsistencies(data, root)
        overall = [p for p, e in zip(fields, exc.errors(), strict=True) if e["loc"] == ()]
        problems.extend(p for p in fields if p not in overall)
        problems.extend(rules or overall)
    if problems or settings is None:
        raise ConfigError(_report(problems, source))
    return settings


def worker_environment(multiprocess_dir: str) -> dict[str, str]:
    """This process's environment for a worker, naming the shared metrics directory.

    prometheus_client reads PROMETHEUS_MULTIPROC_DIR when it is first imported, so
    the variable must be set in a worker's environment before it starts.
    """
    return {**os.environ, MULTIPROC_ENV: multiprocess_dir}


def _parse_yaml(
    text: str, source: str, env: Mapping[str, str], problems: list[Problem]
) -> tuple[yaml.Node | None, Any]:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {}
        _interpolate(root, env, problems)
        _find_duplicates(root, "", problems)
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: line 1: the file must be a mapping of settings")
    return root, data


def _interpolate(node: yaml.Node, env: Mapping[str, str], problems: list[Problem]) -> None:
    if isinstance(node, yaml.ScalarNode):
        if isinstance(node.value, str) and "${" in node.value:
            node.value = _VARIABLE.sub(lambda m: _lookup(m, node, env, problems), node.value)
            node.tag = "tag:yaml.org,2002:str"
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _interpolate(item, env, problems)
    elif isinstance(node, yaml.MappingNode):
        for _key, value in node.value:
            _interpolate(value, env, problems)


def _lookup(
    match: re.Match[str], node: yaml.Node, env: Mapping[str, str], problems: list[Problem]
) -> str:
    name, default = match.group(1), match.group(2)
    if name in env:
        return env[name]
    if default is not None:
        return default
    problems.append(
        (
            node.start_mark.line + 1,
            f"{_UNSET}{name} is not set (write ${{{name}:-}} to allow it unset)",
        )
    )
    return ""


def _find_duplicates(node: yaml.Node, path: str, problems: list[Problem]) -> None:
    """A key given twice: YAML keeps the last silently, which hides a mistake."""
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            line = key.start_mark.line + 1
            if name in first:
                problems.append((line, f"{path}{name}: given twice (first on line {first[name]})"))
            else:
                first[name] = line
            _find_duplicates(value, f"{path}{name}.", problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _find_duplicates(item, f"{path}{index}.", problems)


def _apply_overrides(
    data: dict[str, Any],
    env: Mapping[str, str],
    *,
    host: str | None,
    port: int | None,
    upstream: str | None,
) -> None:
    listen = dict(data.get("listen") or {})
    if host is not None:
        listen["host"] = host
    if port is not None:
        listen["port"] = port
    if listen:
        data["listen"] = listen

    upstreams = data.get("upstreams")
    if not isinstance(upstreams, list) or not upstreams:
        upstreams = [{}]
    upstreams = [dict(u) if isinstance(u, dict) else u for u in upstreams]
    if upstream is not None:
        upstreams = (
            [{**upstreams[0], "base_url": upstream}]
            if isinstance(upstreams[0], dict)
            else upstreams
        )
    api_key = env.get(API_KEY_ENV)
    if api_key:
        for entry in upstreams:
            if isinstance(entry, dict) and not entry.get("api_key"):
                entry["api_key"] = api_key
    data["upstreams"] = upstreams

    multiprocess_dir = env.get(MULTIPROC_ENV)
    if multiprocess_dir:
        data["metrics"] = {**dict(data.get("metrics") or {}), "multiprocess_dir": multiprocess_dir}


def _validation_problems(exc: ValidationError, root: yaml.Node | None) -> list[Problem]:
    problems: list[Problem] = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = error["loc"]
        field = ".".join(str(part) for part in loc) or "(top level)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            nearest = difflib.get_close_matches(str(loc[-1]), _known_keys(loc[:-1]), n=1)
            message = "unknown setting" + (f"; did you mean {nearest[0]!r}?" if nearest else "")
        problems.append((_line_of(root, loc), f"{field}: {message}"))
    return problems


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The setting names allowed at ``loc`` (list indexes skipped)."""
    model: Any = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if _is_model(model) else None
        if field is None:
            return []
        model = _model_in(field.annotation)
    return list(model.model_fields) if _is_model(model) else []


def _is_model(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def _model_in(annotation: Any) -> Any:
    """The settings model inside an annotation (``list[X]``, ``X | None``, ``X``)."""
    if _is_model(annotation):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _raw_inconsistencies(data: Mapping[str, Any], root: yaml.Node | None) -> list[Problem]:
    def number(value: Any, default: int) -> int | None:
        value = default if value is None else value
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    fields = Settings.model_fields
    admission = data.get("admission")
    admission = admission if isinstance(admission, dict) else {}
    upstreams = data.get("upstreams")
    upstreams = upstreams if isinstance(upstreams, list) else []
    state = data.get("state", fields["state"].default)
    found = inconsistencies(
        window_min=number(admission.get("window_min"), fields["admission"].default.window_min),
        upstream_max_concurrent=number(
            data.get("upstream_max_concurrent"), fields["upstream_max_concurrent"].default
        ),
        workers=number(data.get("workers"), fields["workers"].default),
        state=state if isinstance(state, str) else None,
        tenants=bool(data.get("tenants")),
        keyless_upstream=any(isinstance(u, dict) and not u.get("api_key") for u in upstreams),
    )
    return [(_line_of(root, tuple(f.split("."))), f"{f}: {m}") for f, m in found]


def _report(problems: list[Problem], source: str) -> str:
    unset = [p for p in problems if p[1].startswith(_UNSET)]
    # What an unset variable left empty is not worth a second complaint on its line.
    unset_lines = {line for line, _ in unset}
    rest = [p for p in problems if p not in unset and p[0] not in unset_lines]
    ordered = sorted(unset + rest, key=lambda p: (p[0] is None, p[0] or 0))
    return "\n".join(
        f"{source}: line {line}: {text}" if line else f"{source}: {text}" for line, text in ordered
    )


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the deepest YAML node on the error's path."""
    node, line = root, None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        node = _child(node, part)
    if node is not None:
        line = node.start_mark.line + 1
    return line


def _child(node: yaml.Node, part: int | str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == part:
                # An empty value has no useful position of its own; point at its key.
                empty = isinstance(value, yaml.ScalarNode) and value.value == ""
                found: yaml.Node = key if empty else value
                return found
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        child: yaml.Node = node.value[part]
        return child
    return None
