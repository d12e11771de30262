"""Helpers for the tests that run the real agent: environment checks, servers, waiting.

Tests marked `ebpf` need root, BCC and a few Debian tools (scripts/setup-ebpf.sh
installs them). Elsewhere they skip with the reason; with CI=true they fail,
since CI runs as root and must exercise them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors.ebpf.agent import Agent, AgentConfig
from collectors.ebpf.bcc_import import bcc_problem
from collectors.ebpf.sinks import JsonLinesSink

TOOLS = ("curl", "dnsmasq", "dig")


def require_ebpf() -> None:
    problem = bcc_problem()
    if problem is None:
        missing = [tool for tool in TOOLS if shutil.which(tool) is None
                   and not Path("/usr/sbin", tool).exists()]
        if missing:
            problem = f"missing {', '.join(missing)} (run scripts/setup-ebpf.sh)"
    if problem is not None:
        unavailable(problem)


def unavailable(problem: str) -> None:
    """Skip with the reason; under CI (CI=true, as root) fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the eBPF tests: {problem}")
    pytest.skip(problem)


def host_address() -> str:
    """A non-loopback IPv4 address of this host (its connections are traced on both ends)."""
    from collectors.ebpf.listeners import is_loopback, local_addresses

    candidates = sorted(ip for ip in local_addresses() if ":" not in ip and not is_loopback(ip))
    if not candidates:
        pytest.skip("this host has no non-loopback IPv4 address")
    return candidates[0]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class RunningAgent:
    """The real agent in this process, writing its batches as JSON lines."""

    def __init__(self, config: AgentConfig, path: Path) -> None:
        self.path = path
        self.agent = Agent(config, JsonLinesSink(str(path)))
        self.agent.start()
        self.agent.run_in_thread()

    def batches(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def items(self, kind: str) -> list[dict[str, Any]]:
        return [item for batch in self.batches() for item in batch.get(kind, [])]

    def wait_for(self, kind: str, match: Callable[[dict[str, Any]], bool],
                 timeout: float = 20.0) -> list[dict[str, Any]]:
        """Items of a kind that match, once at least one has been delivered."""
        deadline = time.monotonic() + timeout
        while True:
            found = [item for item in self.items(kind) if match(item)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def stop(self) -> None:
        self.agent.stop()


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=60,
                          **kwargs)


def python(code: str) -> subprocess.CompletedProcess[str]:
    """Run a client in a separate process (the agent never traces its own)."""
    return run([sys.executable, "-c", code])


def serve(args: list[str], port: int, host: str = "127.0.0.1") -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, host)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def in_thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread
