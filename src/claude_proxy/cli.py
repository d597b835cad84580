"""The ``claude-proxy`` command: thin wrappers that parse flags into Settings and run."""

from __future__ import annotations

import socket
import sys

import click

from claude_proxy import __version__
from claude_proxy.bench.cli import bench
from claude_proxy.config import ConfigError, Settings, load_settings
from claude_proxy.document_cli import (
    DEFAULT_MODEL,
    DEFAULT_URL,
    DocumentRequest,
    read_document,
    run_document,
)
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


@main.command()
@click.argument("file", metavar="FILE|-")
@click.option("-i", "--instruction", required=True, help="What to do with the document.")
@click.option(
    "--url",
    envvar="CLAUDE_PROXY_URL",
    default=DEFAULT_URL,
    show_default=True,
    help="The gateway (env CLAUDE_PROXY_URL).",
)
@click.option(
    "--api-key",
    envvar="ANTHROPIC_API_KEY",
    default="anything",
    help="x-api-key for the gateway (env ANTHROPIC_API_KEY; one without tenants takes any).",
)
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Model of every call.")
@click.option(
    "--chunk-tokens", type=click.IntRange(min=1), help="Tokens per chunk (gateway: 4000)."
)
@click.option(
    "--overlap-tokens",
    type=click.IntRange(min=0),
    help="Tokens shared by neighbouring chunks (gateway: 200; 5% of --chunk-tokens if set).",
)
@click.option("--max-tokens", type=click.IntRange(min=1), help="Per call (gateway: 1024).")
@click.option("--json", "json_output", is_flag=True, help="Print the whole JSON answer.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (default: when stderr is a terminal).",
)
@click.option("--demo", is_flag=True, help="Use an in-process gateway and simulator (no --url).")
@click.option("--speed", type=float, default=1.0, hidden=True)  # the simulator's, with --demo
def document(
    file: str,
    instruction: str,
    url: str,
    api_key: str,
    model: str,
    chunk_tokens: int | None,
    overlap_tokens: int | None,
    max_tokens: int | None,
    json_output: bool,
    progress: bool | None,
    demo: bool,
    speed: float,
) -> None:
    """Run an instruction over a long document (FILE, or - for stdin) through a gateway.

    Prints the answer on stdout. Exit status 1: an error; 2: the file cannot be read;
    3: answered without some parts of the document, named on stderr.
    """
    text = read_document(file)
    if demo:  # the in-process gateway's request log: errors only, on stderr
        from claude_proxy.observability import configure_logging

        configure_logging("error", "console")
    request = DocumentRequest(instruction, model, chunk_tokens, overlap_tokens, max_tokens)
    sys.exit(
        run_document(
            request,
            text,
            url=url,
            api_key=api_key,
            json_output=json_output,
            progress=progress,
            demo=demo,
            speed=speed,
        )
    )


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
main.add_command(bench)
