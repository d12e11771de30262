"""Cost of the Kubernetes watcher's resolution (no API server, no network).

A synthetic cluster: D Deployments (one ReplicaSet each, P pods each) spread
over namespaces, one Service per Deployment. Prints medians of R runs for:

* initial sync: `Resolver.replace` of every kind, as after the first list
  (objects per second and total seconds);
* status churn: pod MODIFIED events that change nothing the watcher reads
  (readiness flips: the most common event in a live cluster), events/s;
* pod replacement: DELETED of one pod + ADDED of its successor on the same
  IP with a Service selecting it (closing and opening leases), events/s.

Run: .venv/bin/python bench/kubernetes_watcher.py [--deployments D] [--pods P] [--runs R]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from typing import Any

from collectors.kubernetes.resolver import Resolver

NAMESPACES = 20


def _meta(ns: str, name: str, uid: str, labels: dict[str, str],
          owner: tuple[str, str, str] | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "namespace": ns, "uid": uid, "labels": labels,
                          "creationTimestamp": "2026-11-21T10:00:00Z"}
    if owner:
        md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1],
                                  "uid": owner[2], "controller": True}]
    return md


def cluster(deployments: int, pods: int) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in ("Deployment", "ReplicaSet", "Pod",
                                                            "Service")}
    n = 0
    for d in range(deployments):
        ns, name = f"ns{d % NAMESPACES}", f"svc{d}"
        labels = {"app": name, "team": f"team{d % 7}"}
        out["Deployment"].append({"metadata": _meta(ns, name, f"d{d}", labels)})
        rs = f"{name}-5d8f7c9b4"
        out["ReplicaSet"].append({"metadata": _meta(
            ns, rs, f"r{d}", {**labels, "pod-template-hash": "5d8f7c9b4"},
            ("Deployment", name, f"d{d}"))})
        for p in range(pods):
            n += 1
            ip = f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"
            out["Pod"].append({
                "metadata": _meta(ns, f"{rs}-{p}", f"p{d}-{p}",
                                  {**labels, "pod-template-hash": "5d8f7c9b4"},
                                  ("ReplicaSet", rs, f"r{d}")),
                "spec": {"containers": [{"name": "main"}]},
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                           "startTime": "2026-11-21T10:00:00Z"}})
        out["Service"].append({"metadata": _meta(ns, name, f"s{d}", {"app": name}),
                               "spec": {"clusterIP": f"10.96.{d // 256}.{d % 256}",
                                        "selector": {"app": name}}})
    return out


def _sync(objs: dict[str, list[dict[str, Any]]]) -> Resolver:
    resolver = Resolver("prod", lambda: 1795260000.0)
    for kind in ("Deployment", "ReplicaSet", "Pod", "Service"):
        resolver.replace(kind, objs[kind])
    return resolver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10, help="pods per Deployment")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    objs = cluster(args.deployments, args.pods)
    total = sum(len(v) for v in objs.values())

    sync_s = []
    for _ in range(args.runs):
        started = time.perf_counter()
        resolver = _sync(objs)
        sync_s.append(time.perf_counter() - started)
    leases = len(resolver.open_leases())

    churn = []
    pods = objs["Pod"]
    for _ in range(args.runs):
        events = []
        for i, pod in enumerate(pods):
            changed = copy.deepcopy(pod)
            changed["status"]["conditions"] = [{"type": "Ready", "status": str(i % 2 == 0)}]
            events.append(changed)
        started = time.perf_counter()
        for pod in events:
            resolver.apply("Pod", "MODIFIED", pod)
        churn.append(len(events) / (time.perf_counter() - started))

    replace = []
    for run in range(args.runs):
        sample = pods[:: max(1, len(pods) // 2000)]
        successors = []
        for pod in sample:
            new = copy.deepcopy(pod)
            new["metadata"]["uid"] += f"-r{run}"
            new["metadata"]["name"] += f"-r{run}"
            successors.append(new)
        started = time.perf_counter()
        for old, new in zip(sample, successors, strict=True):
            resolver.apply("Pod", "DELETED", old)
            resolver.apply("Pod", "ADDED", new)
        replace.append(2 * len(sample) / (time.perf_counter() - started))
        for old, new in zip(sample, successors, strict=True):  # restore for the next run
            resolver.apply("Pod", "DELETED", new)
            resolver.apply("Pod", "ADDED", old)

    median = statistics.median
    print(f"cluster: {args.deployments} deployments x {args.pods} pods, "
          f"{len(objs['Service'])} services, {total} objects, {leases} open leases")
    print(f"initial sync: median {median(sync_s):.3f} s ({total / median(sync_s):,.0f} objects/s)")
    print(f"status churn: median {median(churn):,.0f} pod events/s")
    print(f"pod replacement (delete + add, service re-evaluated): "
          f"median {median(replace):,.0f} events/s")


if __name__ == "__main__":
    main()
