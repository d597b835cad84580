"""The ``claude-proxy`` command: thin wrappers that parse flags into Settings and run."""

from __future__ import annotations

import socket
import sys

import click

from claude_proxy import __version__
from claude_proxy.config import ConfigError, Settings, load_settings
from claude_proxy.sim import simulate

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="claude-proxy")
def main() -> None:
    """claude-proxy: a production gateway for the Anthropic Messages API."""


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML file.")
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8000).")
@click.option("--upstream", help="Base URL of the Messages API (default the real API).")
@click.option(
    "--workers", type=click.IntRange(1, 256), help="Worker processes (default 1; more need redis)."
)
@click.option("--worker-fd", type=int, hidden=True)  # set by the supervisor for its workers
def serve(
    config_path: str | None,
    host: str | None,
    port: int | None,
    upstream: str | None,
    workers: int | None,
    worker_fd: int | None,
) -> None:
    """Run the gateway."""
    settings = _load_or_exit(config_path, host=host, port=port, upstream=upstream, workers=workers)
    _configure_logging(settings)
    from claude_proxy.runner import serve_gateway

    if worker_fd is not None:
        serve_gateway(settings, socket.socket(fileno=worker_fd))
        return
    if settings.workers > 1:
        from claude_proxy.workers import supervise

        command = [sys.executable, "-m", "claude_proxy", "serve"]
        for flag, value in (("--config", config_path), ("--upstream", upstream)):
            if value is not None:
                command += [flag, value]
        sys.exit(supervise(settings, command))
    serve_gateway(settings)


@main.command("check-config")
@click.argument("path", type=click.Path(dir_okay=False))
def check_config(path: str) -> None:
    """Validate a configuration file; name the bad field and line."""
    settings = _load_or_exit(path)
    upstreams = ", ".join(f"{u.name} ({u.base_url})" for u in settings.upstreams)
    click.echo(
        f"{path}: OK; listen {settings.listen.host}:{settings.listen.port}; upstreams: {upstreams}"
    )


@main.command()
@click.option("--port", type=int, default=8000, show_default=True, help="Gateway port.")
@click.option("--sim-port", type=int, default=0, help="Simulator port (default: a free one).")
@click.option(
    "--speed",
    type=float,
    default=1.0,
    show_default=True,
    help="Simulator latency factor (0 = instant).",
)
def demo(port: int, sim_port: int, speed: float) -> None:
    """Run the simulator and the gateway together; nothing to configure."""
    from claude_proxy.demo import run_demo
    from claude_proxy.observability import configure_logging

    configure_logging("info", "console")

    run_demo(gateway_port=port, sim_port=sim_port, speed=speed)


def _load_or_exit(
    path: str | None,
    host: str | None = None,
    port: int | None = None,
    upstream: str | None = None,
    workers: int | None = None,
) -> Settings:
    try:
        return load_settings(path, host=host, port=port, upstream=upstream, workers=workers)
    except ConfigError as exc:
        click.echo(f"configuration error:\n{exc}", err=True)
        sys.exit(2)


def _configure_logging(settings: Settings) -> None:
    from claude_proxy.observability import configure_logging

    configure_logging(settings.log.level, settings.log.format)


main.add_command(simulate)
