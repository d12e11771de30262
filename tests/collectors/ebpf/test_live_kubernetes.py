"""`topology collect --kubeconfig` on this machine (root + BCC): a client process placed in
a real kubepods cgroup is reported as its pod's Deployment, known from the test API
server speaking list/watch (tests/collectors/kubernetes/apiserver.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.collectors.ebpf import live
from tests.collectors.ebpf.test_cluster_identity import kubeconfig
from tests.collectors.kubernetes import cluster as k
from tests.collectors.kubernetes.apiserver import serve

pytestmark = pytest.mark.ebpf
NS = "shop"
NODE = "node-under-test"


def _cgroup_root() -> Path:
    """The cgroup v2 mount (unified or hybrid), where a test may create a kubepods tree."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    live.unavailable("no cgroup v2 hierarchy mounted")
    raise AssertionError("unreachable")


@pytest.fixture
def pod_cgroup() -> Iterator[tuple[str, Path]]:
    """A container's cgroup as the kubelet (systemd driver, containerd) lays it out."""
    live.require_ebpf()
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    pod = uuid.uuid4().hex[:12]
    parts = ["kubepods.slice", "kubepods-besteffort.slice",
             f"kubepods-besteffort-pod{pod}.slice", f"cri-containerd-{cid}.scope"]
    root = _cgroup_root()
    made: list[Path] = []
    try:
        path = root
        for part in parts:
            path = path / part
            if not path.exists():
                path.mkdir()
                made.append(path)
        yield cid, path
    finally:
        for path in reversed(made):
            for _ in range(50):  # a process that just exited may still be leaving it
                try:
                    path.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


def _client(cgroup: Path, port: int, path: str) -> None:
    """A client that moves itself into the container's cgroup, then calls."""
    live.python(
        "import urllib.request, urllib.error\n"
        f"with open({str(cgroup / 'cgroup.procs')!r}, 'w') as procs:\n"
        "    procs.write(str(__import__('os').getpid()))\n"
        "try:\n"
        f"    urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=10).read()\n"
        "except urllib.error.HTTPError:\n"
        "    pass\n")


def _calls(output: Path) -> list[dict[str, Any]]:
    if not output.exists():
        return []
    return [call for line in output.read_text().splitlines() if line
            for call in json.loads(line).get("calls", [])]


def test_collect_names_a_pod_by_its_deployment(tmp_path: Path, http_server: int,
                                               pod_cgroup: tuple[str, Path]) -> None:
    cid, cgroup = pod_cgroup
    with serve() as (url, state):
        dep = k.deployment(NS, "checkout")
        rs = k.replicaset(NS, "checkout-5d8f7c9b4", owner=dep)
        for obj in (dep, rs, k.pod(NS, "checkout-5d8f7c9b4-x2x9z", owner=rs, ip="10.1.0.5",
                                   container_id=cid, node=NODE)):
            state.put(obj)
        output, log = tmp_path / "batches.jsonl", tmp_path / "collect.log"
        topology = str(Path(sys.executable).parent / "topology")
        env = {**os.environ, "TOPOLOGY_NODE_NAME": NODE}
        with log.open("w") as log_file:
            agent = subprocess.Popen(
                [topology, "collect", "--output", str(output), "--metrics-port", "0",
                 "--flush-interval", "0.2", "--kubeconfig", kubeconfig(tmp_path / "kc", url),
                 "--cluster", "prod"], stdout=subprocess.DEVNULL, stderr=log_file, env=env)
        try:
            deadline = time.monotonic() + 90
            while "collecting (sink" not in log.read_text():
                assert agent.poll() is None, f"collect exited: {log.read_text()}"
                assert time.monotonic() < deadline, f"collect did not start: {log.read_text()}"
                time.sleep(0.2)
            assert f"watching the pods of node {NODE}" in log.read_text()
            # Until the watcher has listed the pod, the process keeps its own name: call
            # again (a new process each time) until the agent names it by its workload.
            found: list[dict[str, Any]] = []
            for attempt in range(20):
                path = f"/pod/{attempt}"
                _client(cgroup, http_server, path)
                deadline = time.monotonic() + 20
                while not (seen := [c for c in _calls(output) if c.get("path") == path]):
                    assert time.monotonic() < deadline, f"no call for {path}"
                    time.sleep(0.1)
                found = [c for c in seen if c["source"]["workload"]["kind"] == "Deployment"]
                if found:
                    break
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=60)
    assert found, f"no call named by the Deployment in {_calls(output)}"
    workload = found[0]["source"]["workload"]
    assert {key: workload[key] for key in ("cluster", "namespace", "name", "kind")} == {
        "cluster": "prod", "namespace": NS, "name": "checkout", "kind": "Deployment"}
    assert found[0]["method"] == "GET" and found[0]["duration_ms"] > 0
    assert any(r.query.get("fieldSelector") == f"spec.nodeName={NODE}"
               for r in state.requests_for("Pod"))
