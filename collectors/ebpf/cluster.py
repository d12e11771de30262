"""The agent in a Kubernetes cluster: container id -> pod -> workload for its identities.

When `topology collect` runs in a pod (service-account credentials) or is given
a kubeconfig, it runs the Kubernetes watcher (collectors/kubernetes) in a
thread, in identity mode: only this node's pods (field selector on
spec.nodeName, when the node name is known) and the controllers that own them,
no Services, and no leases shipped (the cluster's one watcher does that). The
watcher keeps a `ContainerIndex` that `Identities` asks for kubepods processes.
Elsewhere it says so in the log and processes keep their own names.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

from collectors.kubernetes.client import RESOURCES
from collectors.kubernetes.containers import ContainerIndex
from collectors.kubernetes.objects import KIND_SERVICE
from collectors.kubernetes.watcher import WatcherError, WatchOptions, run_watcher

log = logging.getLogger("topology.agent")

IDENTITY_RESOURCES = tuple(r for r in RESOURCES if r.kind != KIND_SERVICE)


class KubernetesConfigError(Exception):
    """The kubeconfig given cannot be used (the message says which file and why)."""


def api_client(kubeconfig: str | None) -> tuple[Any | None, str]:
    """(ApiClient, where its credentials come from), or (None, why there is none).

    An explicit kubeconfig must work (KubernetesConfigError otherwise); without one,
    the in-cluster service account is used when the agent runs in a pod."""
    from kubernetes import client as k8s
    from kubernetes import config

    configuration = k8s.Configuration()
    if kubeconfig:
        try:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        except (config.ConfigException, OSError, ValueError) as exc:
            raise KubernetesConfigError(f"kubeconfig {kubeconfig}: {exc}") from exc
        return k8s.ApiClient(configuration), f"kubeconfig {kubeconfig}"
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException as exc:
        return None, f"not in a Kubernetes cluster ({exc}) and no --kubeconfig"
    return k8s.ApiClient(configuration), "in-cluster service account"


def _discard(_batch: dict[str, Any]) -> None:
    """Leases are the cluster watcher's to ship; the agent only keeps identities."""


class ClusterIdentity:
    """The watcher thread in identity mode and the index it keeps."""

    def __init__(self, api: Any, cluster: str, node: str | None,
                 options: WatchOptions | None = None) -> None:
        self.api = api
        self.cluster = cluster
        self.node = node
        self.index = ContainerIndex()
        self.options = dataclasses.replace(
            options or WatchOptions(), resources=IDENTITY_RESOURCES,
            pod_field_selector=f"spec.nodeName={node}" if node else None)
        self.stopping = threading.Event()
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="topology-agent-kubernetes",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            run_watcher(self.api, self.cluster, _discard, self.stopping,
                        agent=f"agent-kubernetes/{self.node or 'all'}", options=self.options,
                        containers=self.index)
        except WatcherError as exc:
            self.failure = exc
            log.error("%s; processes in pods are named like other processes from now on", exc)
        except Exception as exc:
            self.failure = exc
            log.exception("kubernetes watcher stopped; processes in pods are named like other "
                          "processes from now on")

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.api.close()


def start(kubeconfig: str | None, cluster: str, node: str | None,
          options: WatchOptions | None = None) -> ClusterIdentity | None:
    """Start the identity watcher when there is a cluster to watch; log either way."""
    api, source = api_client(kubeconfig)
    if api is None:
        log.info("kubernetes: %s; processes are named by systemd unit, container or "
                 "executable", source)
        return None
    watching = ClusterIdentity(api, cluster, node, options)
    log.info("kubernetes: watching %s (%s) for pod identities, cluster %r",
             f"the pods of node {node}" if node else "all pods (no --node-name)", source,
             cluster)
    watching.start()
    return watching
