"""Service identity from the `workload` objects of the batch format.

A Kubernetes workload (Deployment, StatefulSet, DaemonSet, bare ReplicaSet)
is `k8s:<cluster>/<namespace>/<kind>/<name>`; a process outside Kubernetes is
`process:<host>/<name>`. Labels (owner team, tier, SLO overrides as the
watcher and agents report them) travel with the service unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from topology.ingest.records import Workload
from topology.model import (
    EXTERNAL_CLIENTS_ID,
    EXTERNAL_CLIENTS_NAME,
    KIND_EXTERNAL_CLIENT,
    KIND_EXTERNAL_SERVICE,
    KIND_PROCESS,
    KIND_UNKNOWN_EXTERNAL,
    UNKNOWN_EXTERNAL_ID,
    UNKNOWN_EXTERNAL_NAME,
    Service,
    external_id,
    process_id,
    workload_id,
)


def workload_service_id(workload: Mapping[str, Any]) -> str:
    return service_id(workload["kind"], workload["name"], workload.get("cluster", ""),
                      workload.get("namespace", ""), workload.get("host", ""))


def record_service_id(workload: Workload) -> str:
    """`workload_service_id` of a decoded batch's workload record."""
    return service_id(workload.kind, workload.name, workload.cluster, workload.namespace,
                      workload.host)


def service_id(kind: str, name: str, cluster: str, namespace: str, host: str) -> str:
    if kind == KIND_PROCESS:
        return process_id(host, name)
    return workload_id(cluster, namespace, kind, name)


def workload_service(workload: Mapping[str, Any], seen: int) -> Service:
    kind = workload["kind"]
    return Service(
        id=workload_service_id(workload),
        name=workload["name"],
        kind=kind,
        namespace=workload.get("namespace", ""),
        cluster=workload.get("cluster", "") if kind != KIND_PROCESS else "",
        labels=dict(workload.get("labels") or {}),
        seen=seen,
    )


def external_service(hostname: str, seen: int) -> Service:
    name = hostname.lower()
    return Service(id=external_id(name), name=name, kind=KIND_EXTERNAL_SERVICE, seen=seen)


def unknown_external(seen: int) -> Service:
    return Service(
        id=UNKNOWN_EXTERNAL_ID, name=UNKNOWN_EXTERNAL_NAME, kind=KIND_UNKNOWN_EXTERNAL, seen=seen
    )


def external_clients(seen: int) -> Service:
    return Service(
        id=EXTERNAL_CLIENTS_ID, name=EXTERNAL_CLIENTS_NAME, kind=KIND_EXTERNAL_CLIENT, seen=seen
    )


def host_name(host: str) -> str:
    """The name in an HTTP Host / :authority / SNI value: port and trailing dot dropped."""
    host = host.strip()
    if host.startswith("["):  # [v6]:port
        end = host.find("]")
        return host[1:end].lower() if end > 0 else host.lower()
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".").lower()
