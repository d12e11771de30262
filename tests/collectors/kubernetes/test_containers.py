"""Container id -> pod -> workload: the index the resolver keeps for the node agent."""

from __future__ import annotations

from typing import Any

import pytest

from collectors.kubernetes.containers import ContainerIndex
from collectors.kubernetes.objects import container_ids
from collectors.kubernetes.resolver import Resolver
from tests.collectors.kubernetes import cluster as k
from tests.collectors.kubernetes.cluster import FakeClock

NS = "shop"
A = "a1" * 32
B = "b2" * 32

STATUSES = [
    ("containerd", {"containerStatuses": [{"containerID": f"containerd://{A}"}]}, (A,)),
    ("cri-o and docker, init containers too",
     {"initContainerStatuses": [{"containerID": f"cri-o://{B}"}],
      "containerStatuses": [{"containerID": f"docker://{A}"}]}, (A, B)),
    ("restarted: the last terminated id stays",
     {"containerStatuses": [{"containerID": f"containerd://{A}", "lastState": {
         "terminated": {"containerID": f"containerd://{B}", "exitCode": 1}}}]}, (A, B)),
    ("not started yet", {"containerStatuses": [{"name": "main", "state": {"waiting": {}}}]}, ()),
    ("upper-case is normalised", {"containerStatuses": [{"containerID": f"containerd://{A.upper()}"}]},
     (A,)),
    ("no statuses", {}, ()),
]


@pytest.mark.parametrize(("case", "status", "expected"), STATUSES, ids=[c[0] for c in STATUSES])
def test_container_ids(case: str, status: dict[str, Any], expected: tuple[str, ...]) -> None:
    assert sorted(container_ids(status)) == sorted(expected)


def test_index_follows_pods_and_counts_versions() -> None:
    index = ContainerIndex()
    workload = {"name": "checkout", "kind": "Deployment"}
    index.set_pod("uid-1", [A], workload)
    assert (index.lookup(A), index.version) == (workload, 1)
    index.set_pod("uid-1", [A], dict(workload))  # same answer: no new version
    assert index.version == 1
    index.set_pod("uid-1", [B], workload)  # restarted with a new id
    assert (index.lookup(A), index.lookup(B), index.version) == (None, workload, 2)
    index.forget_pod("uid-1")
    assert (index.lookup(B), len(index), index.version) == (None, 0, 3)


def test_resolver_fills_the_index_once_the_owner_is_known() -> None:
    index = ContainerIndex()
    resolver = Resolver("prod", FakeClock(), containers=index)
    dep = k.deployment(NS, "checkout")
    rs = k.replicaset(NS, "checkout-5d8f7c9b4", owner=dep)
    pod = k.pod(NS, "checkout-5d8f7c9b4-x2x9z", owner=rs, ip="10.1.0.5", container_id=A)
    resolver.apply("Pod", "ADDED", pod)
    assert index.lookup(A) is None  # its ReplicaSet is not known yet: no guess
    resolver.apply("Deployment", "ADDED", dep)
    resolver.apply("ReplicaSet", "ADDED", rs)
    found = index.lookup(A)
    assert found is not None
    assert (found["cluster"], found["namespace"], found["name"], found["kind"]) == (
        "prod", NS, "checkout", "Deployment")
    job_pod = k.pod(NS, "migrate-x7", owner=k.job(NS, "migrate"), ip="10.1.0.6", container_id=B)
    resolver.apply("Pod", "ADDED", job_pod)
    assert index.lookup(B) is None  # a Job's pod is no workload
    resolver.apply("Pod", "DELETED", pod)
    assert index.lookup(A) is None
