"""Pure resolution: Kubernetes objects in, IP leases out (no I/O, injected clock).

A lease says which workload owned an IP (and port, for host-network pods)
from ``from`` until ``to``. It is the ``endpoints`` entry of the collector
batch format (topology/ingest/events.schema.json). Lease identity is
(ip, port, from): a later entry with the same identity supersedes the earlier
one (it adds ``to``, or carries changed labels).

Rules:

* A pod resolves through its controller owner reference: ReplicaSet ->
  Deployment, else the bare ReplicaSet; StatefulSet; DaemonSet. Pods of other
  controllers (Jobs, ...) or of none are not workloads and get no lease. A
  pod whose ReplicaSet is not known yet waits for it (no guessing from names).
* A pod holds its IPs while it has them and is not Succeeded/Failed. A
  host-network pod shares the node's IP, so it holds (node IP, port) for each
  declared TCP container port instead.
* A Service's cluster IPs belong to the workload its selector picks: the one
  with the most selected pods (ties: kind, then name), so a canary beside the
  main Deployment does not steal the Service. Headless, ExternalName and
  selector-less Services get no lease.
* Lease times (first lease at the pod's startTime or the Service's creation,
  later ones at the clock, never overlapping on one address): see
  :mod:`collectors.kubernetes.leases`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from collectors.kubernetes import ownership
from collectors.kubernetes.containers import ContainerIndex
from collectors.kubernetes.leases import Addr, Lease, LeaseBook
from collectors.kubernetes.objects import (
    CONTROLLER_KINDS,
    JSON,
    KIND_DAEMONSET,
    KIND_DEPLOYMENT,
    KIND_POD,
    KIND_REPLICASET,
    KIND_SERVICE,
    KIND_STATEFULSET,
    ControllerView,
    Meta,
    OwnerRef,
    PodView,
    ServiceView,
    parse_controller,
    parse_pod,
    parse_service,
    selects,
)

WATCHED_KINDS = (*CONTROLLER_KINDS, KIND_POD, KIND_SERVICE)


def _key(meta: Meta) -> str:
    return meta.uid or f"{meta.namespace}/{meta.name}"


class Resolver:
    """The watcher's model of the cluster. Not thread-safe: feed it from one thread."""

    def __init__(self, cluster: str, clock: Callable[[], float] = time.time,
                 containers: ContainerIndex | None = None) -> None:
        self.cluster = cluster
        self.containers = containers  # container id -> workload, for the node agent
        self._pods: dict[str, PodView] = {}
        self._pods_by_ns: dict[str, dict[str, PodView]] = {}
        # namespace -> (label, value) -> pod keys: selector matching without a scan
        self._label_index: dict[str, dict[tuple[str, str], set[str]]] = {}
        self._pod_state: dict[str, tuple[tuple[tuple[str, str], ...], dict[str, Any] | None]] = {}
        self._controllers: dict[tuple[str, str, str], ControllerView] = {}
        self._services: dict[str, ServiceView] = {}
        self._services_by_ns: dict[str, dict[str, ServiceView]] = {}
        # namespace -> (label, value) in a selector -> service keys
        self._selector_index: dict[str, dict[tuple[str, str], set[str]]] = {}
        self._book = LeaseBook(clock)
        self._deferred_ns: set[str] | None = None  # batch mode: services refreshed at the end

    # -- feeding -----------------------------------------------------------

    def apply(self, kind: str, event_type: str, obj: JSON) -> list[Lease]:
        """One watch event (ADDED, MODIFIED or DELETED) -> the lease changes it causes."""
        if event_type not in ("ADDED", "MODIFIED", "DELETED"):
            raise ValueError(f"Resolver.apply: unexpected event type {event_type!r} for {kind}")
        deleted = event_type == "DELETED"
        if kind == KIND_POD:
            return self._set_pod(parse_pod(obj), deleted)
        if kind == KIND_SERVICE:
            return self._set_service(parse_service(obj), deleted)
        if kind in CONTROLLER_KINDS:
            view = parse_controller(kind, obj)
            changed = self._set_controller(view, deleted)
            return self._refresh_namespace(view.meta.namespace) if changed else []
        raise ValueError(f"Resolver.apply: unknown kind {kind!r} (expected one of {WATCHED_KINDS})")

    def replace(self, kind: str, objs: Iterable[JSON]) -> list[Lease]:
        """A full list of one kind (initial list or relist): objects absent from it are gone."""
        out: list[Lease] = []
        if kind == KIND_POD:
            self._deferred_ns = set()
            try:
                views = [parse_pod(o) for o in objs]
                keep = {_key(v.meta) for v in views}
                for gone in [p for k, p in self._pods.items() if k not in keep]:
                    out += self._set_pod(gone, deleted=True)
                for view in views:
                    out += self._set_pod(view, deleted=False)
                touched = self._deferred_ns
            finally:
                self._deferred_ns = None
            for ns in sorted(touched):
                for key in list(self._services_by_ns.get(ns, {})):
                    out += self._refresh_service(key)
        elif kind == KIND_SERVICE:
            services = [parse_service(o) for o in objs]
            keep = {_key(s.meta) for s in services}
            for gone in [s for k, s in self._services.items() if k not in keep]:
                out += self._set_service(gone, deleted=True)
            for svc in services:
                out += self._set_service(svc, deleted=False)
        elif kind in CONTROLLER_KINDS:
            views = [parse_controller(kind, o) for o in objs]
            keep = {(kind, v.meta.namespace, v.meta.name) for v in views}
            touched = set()
            for k, gone in [(k, c) for k, c in self._controllers.items() if k[0] == kind]:
                if k not in keep and self._set_controller(gone, deleted=True):
                    touched.add(k[1])
            for view in views:
                if self._set_controller(view, deleted=False):
                    touched.add(view.meta.namespace)
            for ns in sorted(touched):
                out += self._refresh_namespace(ns)
        else:
            raise ValueError(f"Resolver.replace: unknown kind {kind!r}")
        return out

    def open_leases(self) -> list[Lease]:
        """Every lease currently open (for a resync or a test)."""
        return self._book.open_leases()

    # -- objects -----------------------------------------------------------

    def _set_pod(self, pod: PodView, deleted: bool) -> list[Lease]:
        key, ns = _key(pod.meta), pod.meta.namespace
        old = self._pods.get(key)
        index = self._label_index.setdefault(ns, {})
        if old is not None and (deleted or old.meta.labels != pod.meta.labels):
            for item in old.meta.labels.items():
                index.get(item, set()).discard(key)
        if deleted:
            self._pods.pop(key, None)
            self._pods_by_ns.get(ns, {}).pop(key, None)
        else:
            self._pods[key] = pod
            self._pods_by_ns.setdefault(ns, {})[key] = pod
            for item in pod.meta.labels.items():
                index.setdefault(item, set()).add(key)
        return self._refresh_pod(key, pod)

    def _set_service(self, svc: ServiceView, deleted: bool) -> list[Lease]:
        key = _key(svc.meta)
        index = self._selector_index.setdefault(svc.meta.namespace, {})
        old = self._services.get(key)
        if old is not None:
            for item in old.selector.items():
                index.get(item, set()).discard(key)
        if not deleted:
            for item in svc.selector.items():
                index.setdefault(item, set()).add(key)
        if deleted:
            self._services.pop(key, None)
            self._services_by_ns.get(svc.meta.namespace, {}).pop(key, None)
        else:
            self._services[key] = svc
            self._services_by_ns.setdefault(svc.meta.namespace, {})[key] = svc
        return self._refresh_service(key)

    def _set_controller(self, view: ControllerView, deleted: bool) -> bool:
        """Store or drop a controller; True when pod resolution may have changed."""
        k = (view.kind, view.meta.namespace, view.meta.name)
        old = self._controllers.get(k)
        if deleted:
            if old is None or (view.meta.uid and old.meta.uid != view.meta.uid):
                return False
            del self._controllers[k]
            return True
        if old is not None and old.fingerprint == view.fingerprint:
            return False
        self._controllers[k] = view
        return True

    def _controller(self, kind: str, ns: str, ref: OwnerRef) -> ControllerView | None:
        found = self._controllers.get((kind, ns, ref.name))
        if found is not None and ref.uid and found.meta.uid and found.meta.uid != ref.uid:
            return None  # same name, another incarnation
        return found

    # -- resolution --------------------------------------------------------

    def resolve(self, pod: PodView) -> dict[str, Any] | None:
        """The workload (schema ``workload`` object) a pod belongs to, or None."""
        owner, ns = pod.meta.controller, pod.meta.namespace
        if owner is None:
            return None
        if owner.kind == KIND_REPLICASET:
            rs = self._controller(KIND_REPLICASET, ns, owner)
            if rs is None:
                return None
            top = rs.meta.controller
            if top is not None and top.kind == KIND_DEPLOYMENT:
                kind, name = KIND_DEPLOYMENT, top.name
                ctrl = self._controller(KIND_DEPLOYMENT, ns, top)
            else:
                kind, name, ctrl = KIND_REPLICASET, rs.meta.name, rs
        elif owner.kind in (KIND_STATEFULSET, KIND_DAEMONSET):
            kind, name = owner.kind, owner.name
            ctrl = self._controller(owner.kind, ns, owner)
        else:
            return None
        wl = (ctrl.meta.annotations, ctrl.meta.labels) if ctrl is not None else None
        labels = ownership.workload_labels(
            wl, (pod.meta.annotations, pod.meta.labels), where=f"{kind} {ns}/{name}")
        return {"cluster": self.cluster, "namespace": ns, "name": name, "kind": kind,
                "labels": labels}

    def _refresh_namespace(self, ns: str) -> list[Lease]:
        out: list[Lease] = []
        for key, pod in list(self._pods_by_ns.get(ns, {}).items()):
            out += self._refresh_pod(key, pod)
        return out

    def _refresh_pod(self, key: str, pod: PodView) -> list[Lease]:
        present = key in self._pods
        workload = self.resolve(pod) if present else None
        desired: dict[Addr, dict[str, Any]] = {}
        if workload is not None and pod.active:
            if pod.host_network:
                desired = {(ip, port): workload for ip in pod.ips for port in pod.ports}
            else:
                desired = {(ip, None): workload for ip in pod.ips}
        if self.containers is not None:
            self.containers.set_pod(key, pod.container_ids, workload)
        holder = f"pod/{key}"
        if present:
            out = self._book.reconcile(holder, desired, pod.started or pod.meta.created)
        else:
            out = self._book.forget(holder)
        state = (tuple(sorted(pod.meta.labels.items())), workload) if present else None
        before = self._pod_state.get(key)
        if state is None:
            self._pod_state.pop(key, None)
        else:
            self._pod_state[key] = state
        if state != before:
            out += self._refresh_services_for(pod, before)
        return out

    def _refresh_services_for(self, pod: PodView, before: Any) -> list[Lease]:
        ns = pod.meta.namespace
        if self._deferred_ns is not None:
            self._deferred_ns.add(ns)
            return []
        old_labels = dict(before[0]) if before else {}
        index = self._selector_index.get(ns, {})
        candidates: set[str] = set()
        for item in (*pod.meta.labels.items(), *old_labels.items()):
            candidates.update(index.get(item, ()))
        out: list[Lease] = []
        for key in sorted(candidates):
            svc = self._services[key]
            if selects(svc.selector, pod.meta.labels) or selects(svc.selector, old_labels):
                out += self._refresh_service(key)
        return out

    def _refresh_service(self, key: str) -> list[Lease]:
        svc = self._services.get(key)
        desired: dict[Addr, dict[str, Any]] = {}
        if svc is not None and svc.cluster_ips:
            workload = self._service_workload(svc)
            if workload is not None:
                desired = {(ip, None): workload for ip in svc.cluster_ips}
        if svc is None:
            return self._book.forget(f"svc/{key}")
        return self._book.reconcile(f"svc/{key}", desired, svc.meta.created)

    def _service_workload(self, svc: ServiceView) -> dict[str, Any] | None:
        if not svc.selector:
            return None
        index = self._label_index.get(svc.meta.namespace, {})
        matches = sorted((index.get(item, set()) for item in svc.selector.items()), key=len)
        counts: dict[tuple[str, str], int] = {}
        first: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        for key in matches[0].intersection(*matches[1:]):
            state = self._pod_state.get(key)
            if state is None or state[1] is None:
                continue
            ident = (state[1]["kind"], state[1]["name"])
            counts[ident] = counts.get(ident, 0) + 1
            name = self._pods[key].meta.name
            if ident not in first or name < first[ident][0]:
                first[ident] = (name, state[1])  # the same pod whatever the set's order
        if not counts:
            return None
        best = min(counts, key=lambda ident: (-counts[ident], ident))
        return first[best][1]
