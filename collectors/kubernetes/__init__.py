"""Kubernetes metadata watcher: which workload owns which IP, as IP leases.

Lists and watches Pods, ReplicaSets, Deployments, StatefulSets, DaemonSets and
Services (read-only, see rbac.yaml), resolves each pod to its workload through
owner references, maps Service cluster IPs to the workload they select, and
emits ``endpoints`` batches (topology/ingest/events.schema.json) to a sink.

* :func:`run_in_cluster` -- inside a pod (service-account credentials);
* :func:`run_watcher` -- with any configured ``kubernetes.client.ApiClient``;
* :class:`Resolver` -- the pure part (objects in, leases out), for replays.

Team, tier and SLO overrides: see :mod:`collectors.kubernetes.ownership`.
"""

from collectors.kubernetes.resolver import Resolver
from collectors.kubernetes.watcher import WatcherError, WatchOptions, run_in_cluster, run_watcher

__all__ = ["Resolver", "WatchOptions", "WatcherError", "run_in_cluster", "run_watcher"]
