"""`topology collect`: the eBPF node agent as a click command (wired into topology/cli.py)."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any

import click

from collectors.ebpf.program import ProgramOptions, render
from collectors.ebpf.tracker import Limits


@click.command("collect")
@click.option("--api", metavar="URL", help="ship batches to POST URL/v1/events")
@click.option("--token", envvar="TOPOLOGY_AGENT_TOKEN",
              help="bearer token for --api (a token with the ingest scope)")
@click.option("--broker", metavar="URL", help="ship batches to the Celery ingest task")
@click.option("--output", metavar="FILE",
              help="write batches as JSON lines to FILE ('-' for standard output)")
@click.option("--print-bpf", is_flag=True, help="print the BPF C as it will be compiled, exit")
@click.option("--metrics-port", type=int, default=9464, show_default=True,
              help="port of the agent's own /metrics (0: none)")
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@click.option("--agent-name", help="name of this agent in batches (default: host name)")
@click.option("--batch-size", type=click.IntRange(1), default=500, show_default=True)
@click.option("--flush-interval", type=click.FloatRange(0.05), default=5.0, show_default=True,
              help="seconds before a partly filled batch is sent")
@click.option("--max-backlog", type=click.IntRange(1), default=64, show_default=True,
              help="batches kept while the sink is down (oldest dropped beyond)")
@click.option("--max-conns", type=click.IntRange(16), default=16384, show_default=True)
@click.option("--max-pending", type=click.IntRange(1), default=16384, show_default=True,
              help="HTTP requests waiting for their response, all connections")
@click.option("--max-head", type=click.IntRange(16, 4096), default=256, show_default=True,
              help="payload bytes captured per read or write")
@click.option("--ringbuf-pages", type=int, default=4096, show_default=True,
              help="kernel ring buffer size in pages (a power of two)")
@click.option("--trace-loopback-servers", is_flag=True,
              help="also report the server side of loopback connections (their clients, "
                   "on this host, already report the same calls)")
@click.option("--kubeconfig", envvar="TOPOLOGY_KUBECONFIG", metavar="FILE",
              type=click.Path(exists=True, dir_okay=False),
              help="name pods' processes by their workload through this cluster's API "
                   "(default: the in-cluster service account when running in a pod)")
@click.option("--cluster", envvar="TOPOLOGY_CLUSTER", default="", show_default=True,
              help="cluster name in workloads (the same as the Kubernetes watcher's)")
@click.option("--node-name", envvar="TOPOLOGY_NODE_NAME",
              help="this node's Kubernetes name: only its pods are watched (default: all)")
@click.option("--log-level", default="info", show_default=True)
def command(api: str | None, token: str | None, broker: str | None, output: str | None,
            print_bpf: bool, metrics_port: int, metrics_host: str, agent_name: str | None,
            batch_size: int,
            flush_interval: float, max_backlog: int, max_conns: int, max_pending: int,
            max_head: int, ringbuf_pages: int, trace_loopback_servers: bool,
            kubeconfig: str | None, cluster: str, node_name: str | None,
            log_level: str) -> None:
    """Watch this node's sockets with eBPF and ship what calls what."""
    try:
        options = ProgramOptions(max_head=max_head, max_conns=max_conns,
                                 ringbuf_pages=ringbuf_pages,
                                 skip_loopback_server=not trace_loopback_servers)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if print_bpf:
        click.echo(render(options))
        return
    chosen = [name for name, value in (("--api", api), ("--broker", broker),
                                       ("--output", output)) if value]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --api URL, --broker URL, --output FILE")
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from collectors.ebpf.agent import Agent, AgentConfig
    from collectors.ebpf.bcc_import import bcc_problem
    from collectors.ebpf.identity import Identities

    problem = bcc_problem()
    if problem:
        raise click.ClickException(f"cannot collect: {problem}")
    config_args: dict[str, Any] = {}
    if agent_name:
        config_args["agent_name"] = agent_name
    config = AgentConfig(
        program=options,
        limits=Limits(max_conns=max_conns, max_pending=max_pending, max_head=max_head),
        batch_size=batch_size, flush_interval=flush_interval, max_backlog=max_backlog,
        **config_args,
    )
    kubernetes = _kubernetes(kubeconfig, cluster, node_name)
    identities = Identities(containers=kubernetes.index if kubernetes else None)
    agent = Agent(config, _sink(api, token, broker, output), identities=identities)
    agent.start()
    if metrics_port:
        from prometheus_client import start_http_server

        from collectors.ebpf.stats import registry_for

        start_http_server(metrics_port, addr=metrics_host, registry=registry_for(agent.stats))
    logging.getLogger("topology.agent").info(
        "collecting (sink %s, metrics %s)", chosen[0],
        f"http://{metrics_host}:{metrics_port}/metrics" if metrics_port else "off")

    def _stop(_signum: int, _frame: Any) -> None:
        agent.stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    agent.run_in_thread()
    agent.stopping.wait()
    agent.stop()
    if kubernetes is not None:
        kubernetes.stop()


def _kubernetes(kubeconfig: str | None, cluster: str, node: str | None) -> Any:
    from collectors.ebpf import cluster as k8s_identity

    try:
        return k8s_identity.start(kubeconfig, cluster, node)
    except k8s_identity.KubernetesConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--kubeconfig") from None


def _sink(api: str | None, token: str | None, broker: str | None, output: str | None) -> Any:
    from collectors.ebpf import sinks

    if api:
        return sinks.HttpSink(api, token=token)
    if broker:
        return sinks.CelerySink(broker)
    assert output is not None
    return sinks.JsonLinesSink(output)


if __name__ == "__main__":
    sys.exit(command())
