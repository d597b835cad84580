"""Load Settings from a YAML file, the environment and command-line overrides.

This is the only module that reads ``os.environ``. Precedence, lowest first:
defaults, the YAML file, environment variables, command-line flags.

``${VAR}`` and ``${VAR:-default}`` inside YAML strings are replaced from the
environment, so secrets stay out of the file. Errors name the field and the line
of the file, never the value (it may be a secret).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from claude_proxy.config.settings import Settings

__all__ = ["ConfigError", "load_settings", "worker_environment"]

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
CONFIG_ENV = "CLAUDE_PROXY_CONFIG"
API_KEY_ENV = "ANTHROPIC_API_KEY"
# prometheus_client reads it when first imported; the settings must name the same directory.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ConfigError(Exception):
    """A configuration that cannot be used; the message says where and why."""


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
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source}: cannot read: {exc}") from None
        root, data = _parse_yaml(text, source, env)

    _apply_overrides(data, env, host=host, port=port, upstream=upstream)
    if workers is not None:
        data["workers"] = workers
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, root, source)) from None


def worker_environment(multiprocess_dir: str) -> dict[str, str]:
    """This process's environment for a worker, naming the shared metrics directory.

    prometheus_client reads PROMETHEUS_MULTIPROC_DIR when it is first imported, so
    the variable must be set in a worker's environment before it starts.
    """
    return {**os.environ, MULTIPROC_ENV: multiprocess_dir}


def _parse_yaml(text: str, source: str, env: Mapping[str, str]) -> tuple[yaml.Node | None, Any]:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {}
        _interpolate(root, source, env)
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: line 1: the file must be a mapping of settings")
    return root, data


def _interpolate(node: yaml.Node, source: str, env: Mapping[str, str]) -> None:
    if isinstance(node, yaml.ScalarNode):
        if isinstance(node.value, str) and "${" in node.value:
            node.value = _VARIABLE.sub(lambda m: _lookup(m, node, source, env), node.value)
            node.tag = "tag:yaml.org,2002:str"
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _interpolate(item, source, env)
    elif isinstance(node, yaml.MappingNode):
        for _key, value in node.value:
            _interpolate(value, source, env)


def _lookup(match: re.Match[str], node: yaml.Node, source: str, env: Mapping[str, str]) -> str:
    name, default = match.group(1), match.group(2)
    if name in env:
        return env[name]
    if default is not None:
        return default
    line = node.start_mark.line + 1
    raise ConfigError(f"{source}: line {line}: environment variable {name} is not set")


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


def _describe(exc: ValidationError, root: yaml.Node | None, source: str) -> str:
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "(top level)"
        where = _line_of(root, error["loc"])
        prefix = f"{source}: line {where}: " if where else f"{source}: "
        lines.append(f"{prefix}{field}: {error['msg']}")
    return "\n".join(lines)


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
