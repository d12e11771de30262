"""`topology up`: `serve` and the eBPF agent in one process, for a single machine.

The agent ships to this process's own API over loopback (the agent never
traces its own process, so that traffic is not observed). Collection needs
root and BCC; without them `up` serves alone and says why in the log.
"""

from __future__ import annotations

import logging
from typing import Any

import click

from topology.cli_options import settings_from, store_flags
from topology.cli_serve import serve

log = logging.getLogger("topology.up")


@click.command("up")
@store_flags
@click.option("--host", help="address to bind [TOPOLOGY_HOST, default 127.0.0.1]")
@click.option("--port", type=int, help="port to bind [TOPOLOGY_PORT, default 8080]")
@click.option("--allow-unauthenticated", is_flag=True,
              help="serve beyond loopback without tokens (logs a warning)")
@click.option("--log-level", help="debug, info, warning, error [TOPOLOGY_LOG_LEVEL]")
@click.option("--token", envvar="TOPOLOGY_AGENT_TOKEN",
              help="ingest token for the agent when the API requires tokens")
@click.option("--metrics-port", type=int, default=9464, show_default=True,
              help="port of the agent's own /metrics (0: none)")
@click.pass_context
def command(ctx: click.Context, token: str | None, metrics_port: int, **flags: Any) -> None:
    """Serve the API and collect this machine's traffic into it."""
    serve_flags = {k: v for k, v in flags.items() if k != "allow_unauthenticated"}
    settings = settings_from(ctx, **serve_flags)
    logging.basicConfig(level=(settings.log_level or "info").upper())
    agent = _start_agent(settings.host, settings.port, token, metrics_port)
    try:
        ctx.invoke(serve, **flags)
    finally:
        if agent is not None:
            agent.stop()


def _start_agent(host: str, port: int, token: str | None, metrics_port: int) -> Any:
    from collectors.ebpf.bcc_import import bcc_problem

    problem = bcc_problem()
    if problem:
        log.warning("topology up: serving WITHOUT collection (%s); "
                    "run as root after scripts/setup-ebpf.sh to see this machine's traffic",
                    problem)
        return None
    from collectors.ebpf.agent import Agent, AgentConfig
    from collectors.ebpf.sinks import HttpSink
    from collectors.ebpf.stats import registry_for

    target = "127.0.0.1" if host in ("0.0.0.0", "::", "localhost") else host
    if ":" in target:
        target = f"[{target}]"
    agent = Agent(AgentConfig(), HttpSink(f"http://{target}:{port}", token=token))
    agent.start()  # compiles and attaches the BPF program (a few seconds)
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1", registry=registry_for(agent.stats))
    agent.run_in_thread()
    log.info("topology up: collecting this machine's traffic into http://%s:%d", target, port)
    return agent
