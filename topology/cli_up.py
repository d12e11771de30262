"""`topology up`: the single-machine experience, `serve` and `collect` together.

Both run as child processes of this one: the agent's BCC runtime and the
server's store stay in separate processes, and either can be stopped or
restarted without the other's state. The agent starts once the server
answers /healthz and ships to it. Collection needs root and BCC; without them
`up` serves alone and says why. SIGINT/SIGTERM stop the agent first (its last
batch is shipped), then the server (which writes everything it accepted).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from types import FrameType

import click

from topology.cli_options import settings_from, store_flags
from topology.settings import Settings

log = logging.getLogger("topology.up")

HEALTH_DEADLINE = 120.0


def collection_problem() -> str | None:
    """Why this machine cannot collect, or None when it can."""
    if os.geteuid() != 0:
        return "eBPF collection needs root (run `sudo topology up`)"
    from collectors.ebpf.bcc_import import bcc_problem

    return bcc_problem()


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of both children: the settings this command resolved."""
    env = dict(os.environ)
    env["TOPOLOGY_STORE"] = settings.store
    env["TOPOLOGY_HOST"] = settings.host
    env["TOPOLOGY_PORT"] = str(settings.port)
    for name in ("data_dir", "neo4j_uri", "redis_url"):
        value = getattr(settings, name)
        if value:
            env[f"TOPOLOGY_{name.upper()}"] = str(value)
    return env


def wait_healthy(url: str, server: subprocess.Popen[bytes], deadline: float) -> None:
    while True:
        if server.poll() is not None:
            raise click.ClickException(f"`topology serve` exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise click.ClickException(f"`topology serve` did not answer {url}/healthz in time")
        time.sleep(0.1)


def stop(child: subprocess.Popen[bytes] | None, name: str, timeout: float = 60.0) -> None:
    if child is None or child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop within %.0fs; killing it", name, timeout)
        child.kill()
        child.wait()


@click.command("up")
@store_flags
@click.option("--port", type=click.IntRange(1, 65535), help="API port [TOPOLOGY_PORT]")
@click.option("--no-collect", is_flag=True, help="serve only, even when collection is possible")
@click.pass_context
def up(ctx: click.Context, port: int | None, no_collect: bool, **flags: object) -> None:
    """Serve the API on this machine and collect this machine's traffic into it."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_from(ctx, port=port, **flags)
    env = child_env(settings)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = f"http://{host}:{settings.port}"
    problem = "--no-collect given" if no_collect else collection_problem()

    command = [sys.executable, "-m", "topology.cli"]
    server = subprocess.Popen([*command, "serve"], env=env)
    agent: subprocess.Popen[bytes] | None = None
    stopping = False

    def on_signal(sig: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        wait_healthy(url, server, time.monotonic() + HEALTH_DEADLINE)
        if problem:
            log.warning("serving at %s WITHOUT collection: %s", url, problem)
        else:
            agent = subprocess.Popen([*command, "collect", "--api", url], env=env)
            log.info("serving at %s and collecting this machine's traffic into it", url)
        while not stopping:
            if server.poll() is not None:
                raise click.ClickException(f"`topology serve` exited ({server.returncode})")
            if agent is not None and agent.poll() is not None:
                log.error("`topology collect` exited (%s); serving on without it",
                          agent.returncode)
                agent = None
            time.sleep(0.2)
    finally:
        stop(agent, "collect")
        stop(server, "serve")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
