"""``claude-proxy demo``: the simulator and the gateway in one process, nothing to configure."""

from __future__ import annotations

import click
from pydantic import SecretStr

from claude_proxy.app import create_app
from claude_proxy.config import ListenSettings, Settings, UpstreamSettings
from claude_proxy.listening import listen_errors
from claude_proxy.server import run_event_loop, start_server, wait_for_signal
from claude_proxy.sim import SimSettings, create_sim_app

__all__ = ["run_demo"]

DEMO_UPSTREAM_KEY = "sk-ant-demo-simulator-key"


def run_demo(gateway_port: int = 8000, sim_port: int = 0, speed: float = 1.0) -> None:
    run_event_loop(_demo(gateway_port, sim_port, speed))


async def _demo(gateway_port: int, sim_port: int, speed: float) -> None:
    sim = await start_server(
        create_sim_app(SimSettings(api_key=DEMO_UPSTREAM_KEY, speed=speed)), "127.0.0.1", sim_port
    )
    settings = Settings(
        listen=ListenSettings(host="127.0.0.1", port=gateway_port),
        upstreams=[
            UpstreamSettings(
                name="simulator", base_url=sim.url, api_key=SecretStr(DEMO_UPSTREAM_KEY)
            )
        ],
    )
    try:
        with listen_errors("127.0.0.1", gateway_port):
            gateway = await start_server(
                create_app(settings), "127.0.0.1", gateway_port, clients=settings.clients
            )
    except click.ClickException:
        await sim.stop()
        raise
    click.echo(_instructions(gateway.url, sim.url))
    try:
        await wait_for_signal()
    finally:
        await gateway.stop()
        await sim.stop()
        click.echo("stopped.")


def _instructions(gateway: str, sim: str) -> str:
    return f"""
claude-proxy demo is running.
  gateway   {gateway}   (this is where clients point)
  simulator {sim}   (a local stand-in for the Anthropic API, no internet;
            its key, which the gateway holds, is {DEMO_UPSTREAM_KEY})

Try it (any API key works: the gateway swaps in its own upstream key):

  curl -s {gateway}/v1/messages \\
    -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' \\
    -H 'x-api-key: anything' \\
    -d '{{"model": "claude-sonnet-4-6", "max_tokens": 64,
         "messages": [{{"role": "user", "content": "Hello!"}}]}}'

  curl -sN {gateway}/v1/messages \\
    -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' \\
    -H 'x-api-key: anything' \\
    -d '{{"model": "claude-sonnet-4-6", "max_tokens": 64, "stream": true,
         "messages": [{{"role": "user", "content": "Hello!"}}]}}'

  # with the SDK installed (pip install anthropic):
  python -c 'import anthropic
c = anthropic.Anthropic(base_url="{gateway}", api_key="anything")
with c.messages.stream(model="claude-sonnet-4-6", max_tokens=128,
        messages=[{{"role": "user", "content": "Tell me a story"}}]) as s:
    for text in s.text_stream: print(text, end="", flush=True)
print()'

  # a stream's response carries x-proxy-stream-id; after a dropped connection, resume it:
  curl -sN {gateway}/v1/streams/<stream id> -H 'x-api-key: anything' \
    -H 'Last-Event-ID: <the last id: line you saw>'

  curl -s {gateway}/v1/models -H 'x-api-key: anything' -H 'anthropic-version: 2023-06-01'
  curl -s {gateway}/metrics          # Prometheus
  open {gateway}/dashboard           # the live dashboard, in a browser

Each request is logged below, one line each. Press Ctrl-C to stop.
"""
