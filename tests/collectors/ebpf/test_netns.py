"""A caller in its own network namespace (veth pair): seen from both ends, by address."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.collectors.ebpf import live

pytestmark = pytest.mark.ebpf


@pytest.fixture
def netns() -> Iterator[tuple[str, str, str]]:
    """(namespace, host-side address, namespace-side address) of a fresh veth pair."""
    live.require_ebpf()
    if shutil.which("ip") is None and not os.path.exists("/usr/sbin/ip"):
        live.unavailable("iproute2 `ip` is missing")
    tag = os.getpid() % 100000
    name, host_if, ns_if = f"topo-test-{tag}", f"tph{tag}", f"tpn{tag}"
    subnet = f"10.231.{os.getpid() % 250}"
    host_ip, ns_ip = f"{subnet}.1", f"{subnet}.2"
    commands = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
        ["ip", "link", "set", ns_if, "netns", name],
        ["ip", "addr", "add", f"{host_ip}/30", "dev", host_if],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "netns", "exec", name, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if],
        ["ip", "netns", "exec", name, "ip", "link", "set", ns_if, "up"],
    ]
    try:
        for command in commands:
            live.run(command)
        yield name, host_ip, ns_ip
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)


def _workload(peer: dict[str, Any]) -> str | None:
    workload = peer.get("workload")
    return workload["name"] if workload else None


def test_caller_in_another_namespace(agent: live.RunningAgent, http_server: int,
                                     netns: tuple[str, str, str]) -> None:
    name, host_ip, ns_ip = netns
    live.run(["ip", "netns", "exec", name, "curl", "-s", "-o", "/dev/null", "--max-time", "10",
              f"http://{host_ip}:{http_server}/from/netns"])
    served = agent.wait_for("calls", lambda c: c["side"] == "server"
                            and c.get("path") == "/from/netns")
    assert len(served) == 1
    assert served[0]["source"] == {"ip": ns_ip}  # not this host's process: known by address
    assert served[0]["destination"]["ip"] == host_ip
    assert _workload(served[0]["destination"]).startswith("python3")
    called = agent.wait_for("calls", lambda c: c["side"] == "client"
                            and c.get("path") == "/from/netns")
    assert len(called) == 1
    assert called[0]["source"]["ip"] == ns_ip and _workload(called[0]["source"]) == "curl"
    assert called[0]["destination"]["ip"] == host_ip
    assert called[0]["destination"]["port"] == http_server
    assert _workload(called[0]["destination"]).startswith("python3")  # a new local address
    assert called[0]["status"] == 404 and called[0]["duration_ms"] > 0
