"""The agent's identities in a Kubernetes cluster: kubepods process -> container -> pod ->
workload, through the real watcher (kubernetes.client, kubeconfig) against the test API
server speaking list/watch (tests/collectors/kubernetes/apiserver.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from collectors.cli_collect import command
from collectors.ebpf import cluster
from collectors.ebpf.identity import Identities
from collectors.kubernetes import WatchOptions
from tests.collectors.ebpf import synthetic as s
from tests.collectors.kubernetes import cluster as k
from tests.collectors.kubernetes.apiserver import ApiState, serve

NS = "shop"
NODE = "node-1"
CID_A, CID_B, CID_C = "a1" * 32, "b2" * 32, "c3" * 32
FAST = WatchOptions(page_size=2, watch_timeout_seconds=60, request_timeout=60.0,
                    backoff_initial=0.01, backoff_max=0.05, max_delay=0.02)
PIDS = {300: CID_A, 301: CID_B, 302: CID_C}


def kubepods(cid: str) -> str:
    """/proc/<pid>/cgroup of a container under the systemd cgroup driver (cgroup v2)."""
    return (f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7f3e.slice/"
            f"cri-containerd-{cid}.scope\n")


def kubeconfig(path: Path, url: str) -> str:
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        f"clusters:\n- name: test\n  cluster:\n    server: {url}\n"
        "users:\n- name: agent\n  user:\n    token: not-checked\n"
        "contexts:\n- name: test\n  context:\n    cluster: test\n    user: agent\n")
    return str(path)


def wait_until(what: str, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        pause.wait(0.02)


@pytest.fixture
def api() -> Iterator[tuple[str, ApiState]]:
    with serve() as (url, state):
        yield url, state


def test_kubepods_processes_are_named_by_their_workload(tmp_path: Path,
                                                         api: tuple[str, ApiState]) -> None:
    url, state = api
    dep = k.deployment(NS, "checkout", annotations={"topology.io/team": "payments"})
    rs = k.replicaset(NS, "checkout-5d8f7c9b4", owner=dep)
    sts = k.statefulset(NS, "postgres")
    for obj in (dep, rs, sts,
                k.pod(NS, "checkout-5d8f7c9b4-x2x9z", owner=rs, ip="10.1.0.5", container_id=CID_A),
                k.pod(NS, "checkout-5d8f7c9b4-q7w8e", owner=rs, ip="10.1.1.5", container_id=CID_C,
                      node="node-2")):
        state.put(obj)
    proc = s.fake_proc(tmp_path / "proc", {
        **{pid: (kubepods(cid), "/usr/local/bin/python3.11") for pid, cid in PIDS.items()},
        303: ("0::/system.slice/api.service\n", "/usr/bin/python3.11"),
    })
    watching = cluster.start(kubeconfig(tmp_path / "kubeconfig", url), "prod", NODE, FAST)
    assert watching is not None
    try:
        wait_until("the node's pod", lambda: watching.index.lookup(CID_A) is not None)
        identities = Identities(proc=proc, host=NODE, containers=watching.index)
        checkout = identities.workload(300, "python3.11")
        assert {key: checkout[key] for key in ("cluster", "namespace", "name", "kind")} == {
            "cluster": "prod", "namespace": NS, "name": "checkout", "kind": "Deployment"}
        assert checkout["labels"]["topology.io/team"] == "payments"  # type: ignore[index]
        # Another node's pod is not watched: its process keeps its own name.
        assert identities.workload(302, "python3.11")["kind"] == "Process"
        assert identities.workload(303, "python3.11")["name"] == "api"

        # A pod not known yet: the process name, until the watch event arrives.
        early = identities.workload(301, "python3.11")
        assert (early["name"], early["kind"]) == ("python3.11", "Process")
        assert early["labels"] == {"container_id": CID_B}
        assert identities.workload(301, "python3.11") is early  # nothing changed: cached
        state.put(k.pod(NS, "postgres-0", owner=sts, ip="10.1.0.6", container_id=CID_B))
        wait_until("the new pod", lambda: watching.index.lookup(CID_B) is not None)
        later = identities.workload(301, "python3.11")
        assert (later["name"], later["kind"], later["namespace"]) == (
            "postgres", "StatefulSet", NS)

        # The workloads are valid in a call batch.
        batch = {"batch_id": "b-1", "agent": NODE, "calls": [{
            "timestamp": 1.0, "side": "client", "protocol": "http",
            "source": {"ip": "10.1.0.5", "workload": checkout},
            "destination": {"ip": "10.1.0.6", "port": 5432, "workload": later}}]}
        assert list(s.batch_validator().iter_errors(batch)) == []
    finally:
        watching.stop()
    assert watching.failure is None
    pods = state.requests_for("Pod")
    assert pods and all(r.query.get("fieldSelector") == f"spec.nodeName={NODE}" for r in pods)
    assert state.requests_for("Service") == []  # identities need no Services


def test_outside_a_cluster_the_log_says_so(monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with caplog.at_level(logging.INFO, logger="topology.agent"):
        assert cluster.start(None, "prod", NODE) is None
    assert "not in a Kubernetes cluster" in caplog.text
    assert "named by systemd unit, container or executable" in caplog.text


def test_an_unusable_kubeconfig_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    with pytest.raises(cluster.KubernetesConfigError, match=r"kubeconfig .*kubeconfig"):
        cluster.start(str(path), "prod", NODE)


@pytest.mark.parametrize(("args", "message"), [
    (["--output", "-", "--kubeconfig", "no-such-file"], "does not exist"),
])
def test_collect_kubeconfig_option(args: list[str], message: str) -> None:
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 2
    assert message in result.output
