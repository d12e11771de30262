"""List and watch one resource kind over the Kubernetes API (wire JSON, no models).

Uses the official client's list functions with ``_preload_content=False`` so
objects stay as the API's JSON; the watch stream is read line by line
(newline-delimited watch events). The watch protocol, as the API server
speaks it:

* ``GET <collection>?limit=N[&continue=T]`` pages a list; the list's
  ``metadata.resourceVersion`` is where a watch continues from.
* ``GET <collection>?watch=1&resourceVersion=RV&allowWatchBookmarks=true``
  streams ADDED / MODIFIED / DELETED / BOOKMARK events after RV. The stream
  ends when ``timeoutSeconds`` runs out; a client resumes from the last
  resourceVersion it saw.
* When RV is too old the server answers 410 Gone, either as the HTTP status
  or as an ``ERROR`` event carrying a Status with ``code: 410``: the client
  must list again.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from collectors.kubernetes.objects import (
    KIND_DAEMONSET,
    KIND_DEPLOYMENT,
    KIND_POD,
    KIND_REPLICASET,
    KIND_SERVICE,
    KIND_STATEFULSET,
)

GONE = 410


class Gone(Exception):
    """The resourceVersion (or continue token) expired: list again."""


class WatchProtocolError(Exception):
    """The server sent something the watch protocol does not allow."""


@dataclass(frozen=True, slots=True)
class Resource:
    kind: str
    group: str  # "core" or "apps"
    plural: str  # the resource name, as RBAC rules spell it
    list_function: str  # name of the *_for_all_namespaces function

    @property
    def api_group(self) -> str:
        """The RBAC apiGroup ("" for the core group)."""
        return "" if self.group == "core" else self.group

    def lister(self, api_client: k8s.ApiClient) -> Callable[..., Any]:
        api = k8s.CoreV1Api(api_client) if self.group == "core" else k8s.AppsV1Api(api_client)
        return getattr(api, self.list_function)


# Initial list order: owners before what they own, so pods resolve on first sight.
RESOURCES: tuple[Resource, ...] = (
    Resource(KIND_DEPLOYMENT, "apps", "deployments", "list_deployment_for_all_namespaces"),
    Resource(KIND_STATEFULSET, "apps", "statefulsets", "list_stateful_set_for_all_namespaces"),
    Resource(KIND_DAEMONSET, "apps", "daemonsets", "list_daemon_set_for_all_namespaces"),
    Resource(KIND_REPLICASET, "apps", "replicasets", "list_replica_set_for_all_namespaces"),
    Resource(KIND_POD, "core", "pods", "list_pod_for_all_namespaces"),
    Resource(KIND_SERVICE, "core", "services", "list_service_for_all_namespaces"),
)


def list_all(
    lister: Callable[..., Any], *, page_size: int, request_timeout: tuple[float, float]
) -> tuple[list[dict[str, Any]], str]:
    """Every object of the collection (following ``continue``) and the list's resourceVersion."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        try:
            resp = lister(limit=page_size, _continue=token, _preload_content=False,
                          _request_timeout=request_timeout)
        except ApiException as exc:
            if exc.status == GONE:
                raise Gone(f"list continue token expired: {exc.reason}") from exc
            raise
        body = json.loads(resp.data)
        items.extend(body.get("items") or [])
        meta = body.get("metadata") or {}
        token = meta.get("continue") or None
        if token is None:
            rv = meta.get("resourceVersion")
            if not rv:
                raise WatchProtocolError("list response has no metadata.resourceVersion")
            return items, str(rv)


class WatchStream:
    """One watch request; iterate for events, :meth:`abort` from another thread to end it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resp: Any = None
        self._aborted = False

    def events(
        self, lister: Callable[..., Any], resource_version: str, *,
        timeout_seconds: int, request_timeout: tuple[float, float],
    ) -> Iterator[dict[str, Any]]:
        """Watch events after ``resource_version``; raises :class:`Gone` on 410."""
        try:
            resp = lister(watch=True, resource_version=resource_version,
                          allow_watch_bookmarks=True, timeout_seconds=timeout_seconds,
                          _preload_content=False, _request_timeout=request_timeout)
        except ApiException as exc:
            if exc.status == GONE:
                raise Gone(f"watch from {resource_version}: {exc.reason}") from exc
            raise
        with self._lock:
            self._resp = resp
            aborted = self._aborted
        try:
            if aborted:
                return
            for line in iter_resp_lines(resp):
                if not line.strip():
                    continue
                event = json.loads(line)
                if not isinstance(event, dict) or "type" not in event:
                    raise WatchProtocolError(f"watch line is not an event: {line[:200]!r}")
                if event["type"] == "ERROR":
                    status = event.get("object") or {}
                    if status.get("code") == GONE:
                        raise Gone(f"watch from {resource_version}: {status.get('message', '')}")
                    raise WatchProtocolError(
                        f"watch error {status.get('code')}: {status.get('message', '')}")
                yield event
        finally:
            with self._lock:
                self._resp = None
            resp.close()
            resp.release_conn()

    def abort(self) -> None:
        """Unblock a reader stuck waiting for the next event (used when stopping)."""
        with self._lock:
            self._aborted = True
            resp = self._resp
        if resp is None:
            return
        if hasattr(resp, "shutdown"):  # urllib3 >= 2.3
            resp.shutdown()
            return
        sock = getattr(getattr(resp, "connection", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
