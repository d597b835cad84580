"""The ``bench`` click command: flags into a Plan and a Target, results to stdout and a PNG."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click
import orjson

from claude_proxy.bench.plan import DEFAULT_MODEL, Plan

__all__ = ["bench"]

DEFAULT_CHART = "claude-proxy-bench.png"
UPSTREAM_KEY_ENV = "ANTHROPIC_API_KEY"
# A running gateway takes its own clients' keys: the API key of this shell is not one,
# and must not go to whatever URL --gateway names.
GATEWAY_KEY_ENV = "CLAUDE_PROXY_BENCH_KEY"


def _url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL")
    return value.rstrip("/")


def _in_clear(url: str) -> bool:
    """Whether a key sent to ``url`` crosses a network unencrypted (http, not loopback)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "http" or host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name: it may resolve anywhere


@click.command()
@click.option(
    "--upstream",
    callback=_url,
    help="The API to measure through a gateway started here, e.g. https://api.anthropic.com "
    "(default: the built-in simulator).",
)
@click.option(
    "--api-key",
    help=f"The --upstream's key (default: env {UPSTREAM_KEY_ENV}), or with --gateway the key "
    f"that gateway takes (default: env {GATEWAY_KEY_ENV}; {UPSTREAM_KEY_ENV} is never sent "
    "to a --gateway). Never sent to the built-in simulator.",
)
@click.option(
    "--gateway",
    callback=_url,
    help="Measure this running gateway instead of starting one (its memory needs --gateway-pid).",
)
@click.option("--gateway-pid", type=click.IntRange(min=1), help="The --gateway's process id.")
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Model of every request.")
@click.option("--runs", type=click.IntRange(min=1), help="Requests per row (default 6; quick 3).")
@click.option("--quick", is_flag=True, help="Tiny sizes and a fast simulator: a smoke run.")
@click.option(
    "--speed",
    type=click.FloatRange(min=0),
    help="The built-in simulator's latency factor (default 1: the design note's timings; "
    "quick 0.15).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=DEFAULT_CHART,
    show_default=True,
    help="Where to write the PNG chart.",
)
@click.option("--no-chart", is_flag=True, help="Write no chart (matplotlib not needed).")
@click.option(
    "--json",
    "json_output",
    is_flag=True,
    help="Print the results as JSON on stdout (the tables then go to stderr).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (default: when stderr is a terminal).",
)
def bench(
    upstream: str | None,
    api_key: str | None,
    gateway: str | None,
    gateway_pid: int | None,
    model: str,
    runs: int | None,
    quick: bool,
    speed: float | None,
    out: Path,
    no_chart: bool,
    json_output: bool,
    progress: bool | None,
) -> None:
    """Latency p50/p95, time to first token and the gateway's memory, by max_tokens and
    by input length, with the gateway's prompt caching off and on.

    Requests are streamed one at a time through a gateway: by default one started here
    in front of the built-in simulator (its latency model on; about 1.5 min), or in front
    of --upstream (the real API bills it: 73 requests and about 750,000 estimated input
    tokens by default, said on stderr first), or --gateway, a running one.
    Prints markdown tables and writes a PNG chart. Exit status 1: a request or a server
    failed, or matplotlib is missing (pip install 'claude-proxy[bench]', or --no-chart).
    """
    if gateway is not None and upstream is not None:
        raise click.UsageError("--gateway measures a running gateway: it takes no --upstream")
    if gateway_pid is not None and gateway is None:
        raise click.UsageError("--gateway-pid goes with --gateway")
    if speed is not None and (gateway or upstream):
        raise click.UsageError("--speed is the built-in simulator's: not with --upstream/--gateway")
    if api_key is None and (upstream or gateway):
        api_key = os.environ.get(UPSTREAM_KEY_ENV if upstream else GATEWAY_KEY_ENV) or None
    destination = upstream or gateway
    if api_key is not None and destination is not None and _in_clear(destination):
        click.echo(
            f"warning: the key goes to {destination} over plain http, readable on the way; "
            "use https:// for a host other than this one",
            err=True,
        )
    # Imported here: the other commands need none of the bench.
    from claude_proxy.bench.chart import ChartUnavailable, check_matplotlib, write_chart
    from claude_proxy.bench.run import BenchFailed, Target, run_bench
    from claude_proxy.server import run_event_loop

    if not no_chart:
        try:
            check_matplotlib()
        except ChartUnavailable as exc:
            raise click.ClickException(str(exc)) from None
    plan = Plan.quick(model) if quick else Plan(model=model)
    plan = dataclasses.replace(
        plan,
        runs=runs if runs is not None else plan.runs,
        speed=speed if speed is not None else plan.speed,
    )
    target = Target(upstream, api_key if (upstream or gateway) else None, gateway, gateway_pid)
    err = sys.stderr
    bar = err.isatty() if progress is None else progress
    if upstream or gateway:
        click.echo(
            f"sending {plan.requests + 1:,} requests, about {plan.input_budget:,} input tokens "
            f"(estimated), to {upstream or gateway}",
            err=True,
        )
    try:
        report = run_event_loop(run_bench(plan, target, err, bar=bar))
    except BenchFailed as exc:
        raise click.ClickException(str(exc)) from None
    except asyncio.CancelledError:  # SIGINT, SIGTERM or SIGHUP: what was started is stopped
        with contextlib.suppress(OSError):  # after a SIGHUP the terminal may be gone
            click.echo("\ninterrupted; the simulator and the gateway are stopped", err=True)
        sys.exit(130)
    from claude_proxy.bench.report import markdown

    tables = markdown(report)
    if json_output:
        click.echo(tables, err=True, nl=False)
        click.echo(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(tables, nl=False)
    if not no_chart:
        write_chart(report, out)
        click.echo(f"chart: {out}", err=True)
