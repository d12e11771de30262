"""Realistic Kubernetes objects (wire JSON) for the watcher's tests.

Shaped like what ``kubectl get -o json`` shows: owner references with uids and
``controller: true``, pod-template-hash / controller-revision-hash labels,
podIPs next to podIP, timestamps in RFC 3339.
"""

from __future__ import annotations

import uuid
from typing import Any

T0 = "2026-11-21T10:00:00Z"
T0_EPOCH = 1795255200.0


def _meta(namespace: str, name: str, labels: dict[str, str] | None,
          annotations: dict[str, str] | None, owner: dict[str, Any] | None,
          created: str) -> dict[str, Any]:
    md: dict[str, Any] = {
        "name": name, "namespace": namespace, "uid": str(uuid.uuid4()),
        "creationTimestamp": created, "labels": dict(labels or {}),
    }
    if annotations:
        md["annotations"] = dict(annotations)
    if owner is not None:
        md["ownerReferences"] = [{
            "apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True,
        }]
    return md


def _controller(kind: str, namespace: str, name: str, labels: dict[str, str] | None,
                annotations: dict[str, str] | None, owner: dict[str, Any] | None,
                template_labels: dict[str, str]) -> dict[str, Any]:
    return {
        "kind": kind, "apiVersion": "apps/v1",
        "metadata": _meta(namespace, name, labels, annotations, owner, T0),
        "spec": {"replicas": 2, "selector": {"matchLabels": template_labels},
                 "template": {"metadata": {"labels": template_labels},
                              "spec": {"containers": [{"name": "main", "image": "app:1"}]}}},
        "status": {"replicas": 2, "readyReplicas": 2, "observedGeneration": 1},
    }


def deployment(namespace: str, name: str, *, labels: dict[str, str] | None = None,
               annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return _controller("Deployment", namespace, name, labels, annotations, None, {"app": name})


def statefulset(namespace: str, name: str, *, labels: dict[str, str] | None = None,
                annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return _controller("StatefulSet", namespace, name, labels, annotations, None, {"app": name})


def daemonset(namespace: str, name: str, *, labels: dict[str, str] | None = None,
              annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return _controller("DaemonSet", namespace, name, labels, annotations, None, {"app": name})


def replicaset(namespace: str, name: str, *, owner: dict[str, Any] | None = None,
               labels: dict[str, str] | None = None,
               annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A ReplicaSet; with ``owner`` it is a Deployment's (name ``<deploy>-<hash>``)."""
    base = dict(labels or {})
    if owner is not None:
        base = {**owner["metadata"].get("labels", {}), "app": owner["metadata"]["name"],
                "pod-template-hash": name.rsplit("-", 1)[-1]}
    template = {k: v for k, v in base.items()} or {"app": name}
    return _controller("ReplicaSet", namespace, name, base, annotations, owner, template)


def pod(namespace: str, name: str, *, owner: dict[str, Any] | None, ip: str | None,
        labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
        phase: str | None = None, host_network: bool = False, ports: tuple[int, ...] = (),
        started: str = T0, node: str = "node-1",
        container_id: str | None = None) -> dict[str, Any]:
    """A pod owned by ``owner`` (ReplicaSet, StatefulSet, DaemonSet, Job...) with ``ip``;
    with ``container_id`` its container runs (containerd) with that id."""
    pod_labels = dict(labels or {})
    if owner is not None:
        pod_labels = {"app": owner["metadata"]["labels"].get("app", owner["metadata"]["name"]),
                      **pod_labels}
        if owner["kind"] == "ReplicaSet" and "pod-template-hash" in owner["metadata"]["labels"]:
            pod_labels["pod-template-hash"] = owner["metadata"]["labels"]["pod-template-hash"]
        if owner["kind"] in ("StatefulSet", "DaemonSet"):
            pod_labels["controller-revision-hash"] = f"{owner['metadata']['name']}-7d9f8c6b5"
        if owner["kind"] == "StatefulSet":
            pod_labels["statefulset.kubernetes.io/pod-name"] = name
    container: dict[str, Any] = {"name": "main", "image": "app:1"}
    if ports:
        container["ports"] = [{"containerPort": p, "protocol": "TCP"} for p in ports]
    status: dict[str, Any] = {"phase": phase or ("Running" if ip else "Pending"),
                              "hostIP": "192.168.1.10", "startTime": started}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    if container_id:
        status["containerStatuses"] = [{
            "name": "main", "image": "app:1", "imageID": "docker.io/library/app@sha256:" + "0" * 64,
            "containerID": f"containerd://{container_id}", "ready": True, "restartCount": 0,
            "started": True, "state": {"running": {"startedAt": started}}, "lastState": {}}]
    return {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": _meta(namespace, name, pod_labels, annotations, owner, started),
        "spec": {"nodeName": node, "hostNetwork": host_network, "containers": [container],
                 "serviceAccountName": "default"},
        "status": status,
    }


def service(namespace: str, name: str, *, selector: dict[str, str] | None,
            cluster_ip: str, ports: tuple[int, ...] = (80,)) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "ClusterIP", "clusterIP": cluster_ip,
        "clusterIPs": [cluster_ip], "ipFamilies": ["IPv4"],
        "ports": [{"name": f"p{p}", "port": p, "targetPort": p, "protocol": "TCP"}
                  for p in ports],
        "sessionAffinity": "None",
    }
    if selector is not None:
        spec["selector"] = dict(selector)
    return {"kind": "Service", "apiVersion": "v1",
            "metadata": _meta(namespace, name, {"app": name}, None, None, T0),
            "spec": spec, "status": {"loadBalancer": {}}}


def job(namespace: str, name: str) -> dict[str, Any]:
    """Only as an owner reference target: the watcher does not watch Jobs."""
    return {"kind": "Job", "apiVersion": "batch/v1",
            "metadata": _meta(namespace, name, {"job-name": name}, None, None, T0)}


class FakeClock:
    """Epoch seconds set by the test; the watcher stamps leases with it."""

    def __init__(self, now: float = T0_EPOCH + 3600) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
