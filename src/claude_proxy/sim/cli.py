"""The `simulate` click command: run the simulator as a standalone HTTP server."""

from __future__ import annotations

import asyncio
import dataclasses
import socket

import click
from aiohttp import web

from claude_proxy.listening import listen_errors
from claude_proxy.sim.app import create_sim_app
from claude_proxy.sim.settings import FaultRates, LatencyModel, SimSettings

__all__ = ["simulate"]


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when available (about twice the requests/s), else the default loop."""
    try:
        # Imported here, not at module level: optional, and only the command needs it.
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8001, show_default=True, type=int, help="0: a free port, printed.")
@click.option("--api-key", default=None, help="Required key; default accepts any non-empty key.")
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Latency factor; 0 disables every delay.",
)
@click.option(
    "--ttft-ms",
    default=None,
    type=click.FloatRange(min=0),
    help="Base time to the first token in ms (default 160), before --speed.",
)
@click.option(
    "--token-ms",
    default=None,
    type=click.FloatRange(min=0),
    help="Delay per output token in ms (default 1), before --speed.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the fault RNG.")
@click.option(
    "--fault-rate",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Overall fault rate spread over all kinds (overrides --p-* flags).",
)
@click.option("--p-429", "p_429", default=0.0, type=click.FloatRange(0, 1))
@click.option("--p-529", "p_529", default=0.0, type=click.FloatRange(0, 1))
@click.option("--p-500", "p_500", default=0.0, type=click.FloatRange(0, 1))
@click.option("--p-reset", default=0.0, type=click.FloatRange(0, 1))
@click.option("--p-cut", default=0.0, type=click.FloatRange(0, 1))
@click.option("--p-stream-error", default=0.0, type=click.FloatRange(0, 1))
@click.option("--p-slow", default=0.0, type=click.FloatRange(0, 1))
@click.option(
    "--slow-first-byte",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds of stall before headers on a 'slow' fault.",
)
@click.option(
    "--backlog",
    default=128,
    show_default=True,
    type=click.IntRange(min=1),
    help="Listen backlog: connections the kernel queues before they are accepted.",
)
@click.option(
    "--continue-overlap-words",
    default=0,
    type=click.IntRange(min=0),
    help="Words a continue turn repeats before the rest (real models overlap).",
)
@click.option(
    "--echo",
    is_flag=True,
    help="Answer with the text of the last user turn instead of generated prose.",
)
@click.option(
    "--journal",
    default=0,
    type=click.IntRange(min=0),
    help="Keep the last N request bodies, served at GET /sim/journal (0: off).",
)
def simulate(
    host: str,
    port: int,
    api_key: str | None,
    speed: float,
    ttft_ms: float | None,
    token_ms: float | None,
    seed: int,
    fault_rate: float,
    p_429: float,
    p_529: float,
    p_500: float,
    p_reset: float,
    p_cut: float,
    p_stream_error: float,
    p_slow: float,
    slow_first_byte: float,
    backlog: int,
    continue_overlap_words: int,
    echo: bool,
    journal: int,
) -> None:
    """Run a simulated Anthropic Messages API (latency, usage, caching, faults)."""
    try:
        faults = (
            FaultRates.mix(fault_rate)
            if fault_rate > 0
            else FaultRates(
                p_429=p_429,
                p_529=p_529,
                p_500=p_500,
                p_reset=p_reset,
                p_cut=p_cut,
                p_stream_error=p_stream_error,
                p_slow=p_slow,
            )
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    latency = LatencyModel()
    if ttft_ms is not None:
        latency = dataclasses.replace(latency, base_ttft=ttft_ms / 1000.0)
    if token_ms is not None:
        latency = dataclasses.replace(latency, per_output_token=token_ms / 1000.0)
    settings = SimSettings(
        api_key=api_key,
        speed=speed,
        latency=latency,
        seed=seed,
        faults=faults,
        slow_first_byte=slow_first_byte,
        continue_overlap_words=continue_overlap_words,
        echo=echo,
        journal=journal,
    )
    with listen_errors(host, port):
        # Port 0: bound here, so that the line below names the port the kernel chose
        # (a process that starts the simulator reads its address from it).
        sock = _bind_free_port(host) if port == 0 else None
        shown = port if sock is None else sock.getsockname()[1]
        click.echo(f"claude-proxy simulator listening on http://{host}:{shown}")
        web.run_app(
            create_sim_app(settings),
            host=host if sock is None else None,
            port=port if sock is None else None,
            sock=sock,
            print=None,
            loop=_new_loop(),
            access_log=None,
            backlog=backlog,
        )


def _bind_free_port(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, 0), family=family)
