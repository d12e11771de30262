"""Typed views of the Kubernetes objects the watcher needs, parsed from wire JSON.

The watcher never deserialises into the client's model classes: it reads the
API's JSON (camelCase keys, as served by ``GET /api/v1/pods``) and keeps only
the fields that identity and leases depend on. Parsing is tolerant: a missing
field becomes empty, never an exception, because one odd object must not stop
the watch of a whole cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

KIND_POD = "Pod"
KIND_SERVICE = "Service"
KIND_REPLICASET = "ReplicaSet"
KIND_DEPLOYMENT = "Deployment"
KIND_STATEFULSET = "StatefulSet"
KIND_DAEMONSET = "DaemonSet"
CONTROLLER_KINDS = (KIND_DEPLOYMENT, KIND_STATEFULSET, KIND_DAEMONSET, KIND_REPLICASET)
TERMINAL_PHASES = ("Succeeded", "Failed")

JSON = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class OwnerRef:
    kind: str
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class Meta:
    uid: str
    name: str
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    controller: OwnerRef | None = None
    created: float | None = None


@dataclass(frozen=True, slots=True)
class PodView:
    meta: Meta
    ips: tuple[str, ...]
    phase: str
    host_network: bool
    ports: tuple[int, ...]  # declared container ports (used for host-network pods)
    started: float | None
    container_ids: tuple[str, ...] = ()  # runtime ids, as in the node's cgroup paths

    @property
    def active(self) -> bool:
        """True while the pod holds its IP: a terminal pod has released it."""
        return bool(self.ips) and self.phase not in TERMINAL_PHASES


@dataclass(frozen=True, slots=True)
class ControllerView:
    kind: str
    meta: Meta

    @property
    def fingerprint(self) -> tuple[Any, ...]:
        """What pod resolution reads from a controller; status churn is ignored."""
        return (
            self.meta.uid, self.meta.controller,
            tuple(sorted(self.meta.labels.items())),
            tuple(sorted(self.meta.annotations.items())),
        )


@dataclass(frozen=True, slots=True)
class ServiceView:
    meta: Meta
    cluster_ips: tuple[str, ...]
    selector: Mapping[str, str]


def parse_time(value: Any) -> float | None:
    """RFC 3339 timestamp (``2026-11-21T19:00:00Z``) to epoch seconds."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}


def _controller_ref(refs: Any) -> OwnerRef | None:
    """The owner reference marked ``controller: true`` (the managing one)."""
    if not isinstance(refs, list):
        return None
    for ref in refs:
        if isinstance(ref, Mapping) and ref.get("controller") and ref.get("kind"):
            return OwnerRef(str(ref["kind"]), str(ref.get("name", "")), str(ref.get("uid", "")))
    return None


def parse_meta(obj: JSON) -> Meta:
    md = obj.get("metadata") or {}
    return Meta(
        uid=str(md.get("uid", "")),
        name=str(md.get("name", "")),
        namespace=str(md.get("namespace", "")),
        labels=_str_map(md.get("labels")),
        annotations=_str_map(md.get("annotations")),
        controller=_controller_ref(md.get("ownerReferences")),
        created=parse_time(md.get("creationTimestamp")),
    )


def parse_pod(obj: JSON) -> PodView:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ips: list[str] = []
    for entry in status.get("podIPs") or []:
        ip = entry.get("ip") if isinstance(entry, Mapping) else None
        if ip and ip not in ips:
            ips.append(str(ip))
    if not ips and status.get("podIP"):
        ips.append(str(status["podIP"]))
    ports = sorted({
        int(port["containerPort"])
        for container in spec.get("containers") or []
        for port in container.get("ports") or []
        if isinstance(port, Mapping) and isinstance(port.get("containerPort"), int)
        and str(port.get("protocol", "TCP")).upper() == "TCP"
    })
    return PodView(
        meta=parse_meta(obj),
        ips=tuple(ips),
        phase=str(status.get("phase", "")),
        host_network=bool(spec.get("hostNetwork")),
        ports=tuple(ports),
        started=parse_time(status.get("startTime")),
        container_ids=container_ids(status),
    )


_STATUS_LISTS = ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses")


def container_ids(status: JSON) -> tuple[str, ...]:
    """Runtime container ids of a pod status (``containerd://<id>`` -> ``<id>``), the
    current and the last terminated one of each container (a restart changes the id)."""
    ids: list[str] = []
    for name in _STATUS_LISTS:
        for entry in status.get(name) or []:
            if not isinstance(entry, Mapping):
                continue
            last = (entry.get("lastState") or {}).get("terminated") or {}
            for raw in (entry.get("containerID"), last.get("containerID")):
                if isinstance(raw, str) and raw:
                    cid = raw.rsplit("://", 1)[-1].lower()
                    if cid and cid not in ids:
                        ids.append(cid)
    return tuple(ids)


def parse_controller(kind: str, obj: JSON) -> ControllerView:
    if kind not in CONTROLLER_KINDS:
        raise ValueError(f"parse_controller: {kind!r} is not one of {CONTROLLER_KINDS}")
    return ControllerView(kind=kind, meta=parse_meta(obj))


def parse_service(obj: JSON) -> ServiceView:
    spec = obj.get("spec") or {}
    ips = [str(ip) for ip in spec.get("clusterIPs") or [] if ip]
    if not ips and spec.get("clusterIP"):
        ips.append(str(spec["clusterIP"]))
    routable = tuple(ip for ip in ips if ip != "None")  # "None" marks a headless Service
    if spec.get("type") == "ExternalName":
        routable = ()
    return ServiceView(meta=parse_meta(obj), cluster_ips=routable,
                       selector=_str_map(spec.get("selector")))


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Service selector semantics: every pair must match; an empty selector selects nothing."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())
