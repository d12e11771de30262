"""The real agent against real servers and clients on this machine (root + BCC)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.collectors.ebpf import live
from tests.collectors.ebpf.conftest import TEST_DOMAIN, TEST_DOMAIN_V4, TEST_DOMAIN_V6
from tests.collectors.ebpf.synthetic import batch_validator

pytestmark = pytest.mark.ebpf


def _workload(peer: dict[str, Any]) -> str | None:
    workload = peer.get("workload")
    return workload["name"] if workload else None


def test_agent_threads_run_in_the_background(agent: live.RunningAgent) -> None:
    """Out of the applications' way: polling under SCHED_IDLE (it keeps up here), the
    shipper under SCHED_BATCH."""
    thread = agent.agent._thread
    assert thread is not None and thread.native_id is not None
    assert os.sched_getscheduler(thread.native_id) == os.SCHED_IDLE
    shipper = agent.agent.shipper.native_id
    assert shipper is not None and os.sched_getscheduler(shipper) == os.SCHED_BATCH


def test_curl_keep_alive_requests(agent: live.RunningAgent, http_server: int) -> None:
    base = f"http://127.0.0.1:{http_server}"
    # One curl process, one connection, three requests (keep-alive).
    live.run(["curl", "-s", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
              f"{base}/curl/one", f"{base}/curl/two?x=1", f"{base}/"])

    def mine(call: dict[str, Any]) -> bool:
        return (call["protocol"] == "http" and call["side"] == "client"
                and call["destination"].get("port") == http_server)

    calls = agent.wait_for("calls", lambda c: mine(c) and c["path"] == "/")
    calls = [c for c in agent.items("calls") if mine(c)]
    assert sorted((c["method"], c["path"], c["status"]) for c in calls) == [
        ("GET", "/", 200), ("GET", "/curl/one", 404), ("GET", "/curl/two", 404)]
    for call in calls:
        assert _workload(call["source"]) == "curl"
        assert _workload(call["destination"]) is not None
        assert _workload(call["destination"]).startswith("python3")
        assert call["host"] == f"127.0.0.1:{http_server}"
        assert call["duration_ms"] > 0
    # Loopback: the server side is not traced, its client (this host) reports the calls.
    assert not [c for c in agent.items("calls") if c["side"] == "server"
                and c["destination"].get("port") == http_server
                and c.get("path", "").startswith("/curl/")]


def test_server_side_and_lease_on_a_host_address(agent: live.RunningAgent,
                                                 http_server: int) -> None:
    address = live.host_address()
    live.run(["curl", "-s", "-o", "/dev/null", f"http://{address}:{http_server}/host/addr"])
    served = agent.wait_for("calls", lambda c: c["side"] == "server"
                            and c.get("path") == "/host/addr")
    assert len(served) == 1
    (call,) = served
    assert call["destination"]["ip"] == address
    assert call["destination"]["port"] == http_server
    assert _workload(call["destination"]).startswith("python3")
    assert call["source"]["ip"] == address
    assert (call["method"], call["status"]) == ("GET", 404) and call["duration_ms"] > 0
    client = agent.wait_for("calls", lambda c: c["side"] == "client"
                            and c.get("path") == "/host/addr")
    assert _workload(client[0]["source"]) == "curl"
    leases = agent.wait_for("endpoints", lambda e: e["ip"] == address
                            and e.get("port") == http_server)
    assert leases and leases[0]["workload"]["name"].startswith("python3")
    assert "to" not in leases[0]


def test_urllib_client(agent: live.RunningAgent, http_server: int) -> None:
    live.python(
        "import urllib.request, urllib.error\n"
        f"urllib.request.urlopen('http://127.0.0.1:{http_server}/').read()\n"
        "try:\n"
        f"    urllib.request.urlopen('http://127.0.0.1:{http_server}/urllib/missing')\n"
        "except urllib.error.HTTPError:\n"
        "    pass\n")
    calls = agent.wait_for("calls", lambda c: c["side"] == "client"
                           and c.get("path") == "/urllib/missing")
    assert len(calls) == 1
    (call,) = calls
    assert (call["method"], call["status"], call["error"]) == ("GET", 404, False)
    assert _workload(call["source"]).startswith("python")
    assert call["duration_ms"] > 0


def test_redis_py_commands(agent: live.RunningAgent, valkey_port: int) -> None:
    live.python(
        "import redis\n"
        f"client = redis.Redis(host='127.0.0.1', port={valkey_port})\n"
        "client.set('edge', 'x' * 100)\n"
        "assert client.get('edge') == b'x' * 100\n"
        "try:\n"
        "    client.incr('edge')\n"
        "except redis.ResponseError:\n"
        "    pass\n"
        "client.close()\n")

    def mine(call: dict[str, Any]) -> bool:
        return (call["protocol"] == "redis" and call["side"] == "client"
                and call["destination"].get("port") == valkey_port)

    agent.wait_for("calls", lambda c: mine(c) and c["method"] == "INCRBY")
    calls = [c for c in agent.items("calls") if mine(c)]
    by_method = {c["method"]: c for c in calls}
    assert {"SET", "GET", "INCRBY"} <= set(by_method)
    assert by_method["INCRBY"]["error"] is True
    assert by_method["GET"]["error"] is False
    for call in by_method.values():
        assert _workload(call["source"]).startswith("python")
        assert _workload(call["destination"]) == "valkey-server"
        assert call["duration_ms"] > 0


@pytest.mark.parametrize("client", ["dig", "raw-udp", "glibc"])
def test_dns_answers(agent: live.RunningAgent, dns_server: str, client: str,
                     tmp_path: Path) -> None:
    since = time.time() - 0.5  # only observations of this client's queries
    if client == "glibc":
        # getaddrinfo through the libc resolver (connected UDP socket, A and AAAA at
        # once), pointed at the test server in a private mount namespace.
        resolv = tmp_path / "resolv.conf"
        resolv.write_text(f"nameserver {dns_server}\n")
        live.run(["unshare", "--mount", "sh", "-c",
                  f"mount --bind {resolv} /etc/resolv.conf && getent ahosts {TEST_DOMAIN}"])
        wanted = TEST_DOMAIN_V6
    elif client == "dig":
        live.run(["dig", f"@{dns_server}", "+time=2", "+tries=2", TEST_DOMAIN, "AAAA"])
        wanted = TEST_DOMAIN_V6
    else:
        live.python(
            "import socket, struct\n"
            "query = struct.pack('!6H', 0x4242, 0x0100, 1, 0, 0, 0)\n"
            f"query += b''.join(bytes([len(p)]) + p.encode() for p in '{TEST_DOMAIN}'.split('.'))\n"
            "query += b'\\x00' + struct.pack('!HH', 1, 1)\n"
            "sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "sock.settimeout(5)\n"
            f"sock.sendto(query, ('{dns_server}', 53))\n"
            "data, _ = sock.recvfrom(512)\n"
            "assert data[:2] == b'\\x42\\x42'\n")
        wanted = TEST_DOMAIN_V4
    found = agent.wait_for("dns", lambda d: d["name"] == TEST_DOMAIN and wanted in d["ips"]
                           and d["timestamp"] >= since)
    assert found, f"no DNS observation of {TEST_DOMAIN} -> {wanted}"
    assert found[0]["ttl"] >= 0


def test_batches_are_valid_and_losses_counted(agent: live.RunningAgent,
                                              http_server: int) -> None:
    live.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{http_server}/valid"])
    agent.wait_for("calls", lambda c: c.get("path") == "/valid")
    validator = batch_validator()
    batches = agent.batches()
    assert batches
    for batch in batches:
        validator.validate(batch)
    assert len({batch["batch_id"] for batch in batches}) == len(batches)
    stats = agent.agent.stats
    assert stats.events["conn"] > 0 and stats.events["data"] > 0
    assert set(stats.kernel_lost) == {"conn", "data", "close", "exit"}
