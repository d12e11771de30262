"""The API loop: list every watched kind, then watch each from its resourceVersion.

One thread per kind reads its watch stream and queues events; the calling
thread owns the :class:`Resolver` and the :class:`Batcher`, so resolution is
single-threaded. A watch that ends or drops resumes from the last
resourceVersion seen (events or bookmarks); a 410 Gone makes that kind list
again, and the relist replaces the kind's objects (what vanished meanwhile is
treated as deleted, closing its leases). 401/403 stop the watcher with an
error naming the missing permission: see rbac.yaml.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from collectors.kubernetes.batches import Batcher, Sink
from collectors.kubernetes.client import (
    RESOURCES,
    Gone,
    Resource,
    WatchStream,
    list_all,
)
from collectors.kubernetes.containers import ContainerIndex
from collectors.kubernetes.objects import KIND_POD
from collectors.kubernetes.resolver import Resolver

log = logging.getLogger(__name__)

# How often the consuming loop looks at the stop event when nothing happens.
_IDLE_POLL = 0.2
# Events handled in a row before the loop looks at stop and the batch clock again.
_DRAIN_MAX = 1000


class WatcherError(RuntimeError):
    """The watcher cannot go on (permissions, or the API is not a Kubernetes API)."""


@dataclass(frozen=True, slots=True)
class WatchOptions:
    page_size: int = 500
    watch_timeout_seconds: int = 300  # the server ends each watch after this
    connect_timeout: float = 10.0
    request_timeout: float = 330.0  # client read timeout; beyond the server's
    backoff_initial: float = 0.5  # API reconnects and sink retries
    backoff_max: float = 30.0
    max_endpoints: int = 500  # per batch
    max_delay: float = 1.0  # seconds a lease change may wait for its batch
    resources: tuple[Resource, ...] = RESOURCES
    pod_field_selector: str | None = None  # e.g. spec.nodeName=<node>: one node's pods only

    @property
    def timeouts(self) -> tuple[float, float]:
        """(connect, read) for urllib3: a dead API server must not hold up a stop."""
        return (self.connect_timeout, self.request_timeout)


def _fatal(resource: Resource, exc: ApiException) -> WatcherError | None:
    if exc.status in (401, 403):
        return WatcherError(
            f"kubernetes watcher: {exc.status} {exc.reason} listing/watching "
            f"{resource.kind} ({resource.group}): the service account needs get/list/watch "
            f"on it (collectors/kubernetes/rbac.yaml)")
    if exc.status == 404:
        return WatcherError(
            f"kubernetes watcher: 404 for {resource.kind}: the API server does not serve "
            f"{resource.group} {resource.list_function}")
    return None


class _KindWatch(threading.Thread):
    """Watch one kind forever (until stop), feeding ``out``; relists on 410."""

    def __init__(self, resource: Resource, lister: Callable[..., Any], resource_version: str,
                 out: queue.Queue[tuple[Any, ...]], stop: threading.Event,
                 options: WatchOptions) -> None:
        super().__init__(name=f"k8s-watch-{resource.kind}", daemon=True)
        self.resource = resource
        self.resource_version: str | None = resource_version
        self._lister = lister
        self._out = out
        self._stop_event = stop
        self._options = options
        self._stream = WatchStream()

    def abort(self) -> None:
        self._stream.abort()

    def run(self) -> None:
        opts, kind = self._options, self.resource.kind
        delay = opts.backoff_initial
        while not self._stop_event.is_set():
            seen = 0
            try:
                if self.resource_version is None:
                    items, self.resource_version = list_all(
                        self._lister, page_size=opts.page_size,
                        request_timeout=opts.timeouts)
                    self._out.put(("replace", kind, items))
                self._stream = WatchStream()
                if self._stop_event.is_set():
                    break
                for event in self._stream.events(
                        self._lister, self.resource_version,
                        timeout_seconds=opts.watch_timeout_seconds,
                        request_timeout=opts.timeouts):
                    obj = event.get("object") or {}
                    if event["type"] != "BOOKMARK":
                        self._out.put(("event", kind, event["type"], obj))
                    rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if rv:
                        self.resource_version = str(rv)
                    seen += 1
                    delay = opts.backoff_initial
                if seen:
                    continue  # the server ended the watch: resume at once
            except Gone as exc:
                log.info("kubernetes watcher: %s: %s; listing again", kind, exc)
                self.resource_version = None
                continue
            except ApiException as exc:
                if (fatal := _fatal(self.resource, exc)) is not None:
                    self._out.put(("fatal", fatal))
                    return
                log.warning("kubernetes watcher: %s: API error %s %s; retrying in %.1fs",
                            kind, exc.status, exc.reason, delay)
            except Exception as exc:  # a broken stream of any kind: resume
                if self._stop_event.is_set():
                    break
                log.warning("kubernetes watcher: %s: watch from %s broke (%s: %s); "
                            "resuming in %.1fs", kind, self.resource_version,
                            type(exc).__name__, exc, delay)
            self._stop_event.wait(delay)
            delay = min(delay * 2, opts.backoff_max)


def _initial_list(resource: Resource, lister: Callable[..., Any], stop: threading.Event,
                  options: WatchOptions) -> tuple[list[dict[str, Any]], str] | None:
    delay = options.backoff_initial
    while not stop.is_set():
        try:
            return list_all(lister, page_size=options.page_size,
                            request_timeout=options.timeouts)
        except ApiException as exc:
            if (fatal := _fatal(resource, exc)) is not None:
                raise fatal from exc
            log.warning("kubernetes watcher: listing %s: %s %s; retrying in %.1fs",
                        resource.kind, exc.status, exc.reason, delay)
        except Exception as exc:  # network or protocol trouble: retry until stopped
            log.warning("kubernetes watcher: listing %s failed (%s: %s); retrying in %.1fs",
                        resource.kind, type(exc).__name__, exc, delay)
        stop.wait(delay)
        delay = min(delay * 2, options.backoff_max)
    return None


def run_watcher(
    api_client: k8s.ApiClient,
    cluster: str,
    sink: Sink,
    stop: threading.Event,
    *,
    agent: str | None = None,
    clock: Callable[[], float] = time.time,
    options: WatchOptions | None = None,
    containers: ContainerIndex | None = None,
) -> None:
    """List and watch the cluster behind ``api_client`` until ``stop`` is set.

    Every change of IP ownership reaches ``sink`` as a collector batch with
    ``endpoints`` (IP leases); the first batches carry the leases of the
    initial list. ``clock`` (epoch seconds) stamps lease starts and ends.
    Blocks; returns after ``stop`` with what was pending flushed. Raises
    :class:`WatcherError` when the API refuses access. With ``containers``, the
    workload of every pod's containers is kept there too (the node agent's use).
    """
    opts = options or WatchOptions()
    resolver = Resolver(cluster, clock, containers)
    batcher = Batcher(sink, agent or f"kubernetes/{cluster}", time.monotonic,
                      max_endpoints=opts.max_endpoints, max_delay=opts.max_delay,
                      retry_initial=opts.backoff_initial, retry_max=opts.backoff_max)
    listers = {r.kind: r.lister(api_client) for r in opts.resources}
    if opts.pod_field_selector and KIND_POD in listers:
        listers[KIND_POD] = functools.partial(listers[KIND_POD],
                                              field_selector=opts.pod_field_selector)
    versions: dict[str, str] = {}
    for resource in opts.resources:
        listed = _initial_list(resource, listers[resource.kind], stop, opts)
        if listed is None:
            return
        items, versions[resource.kind] = listed
        batcher.add(resolver.replace(resource.kind, items))
    batcher.flush()

    events: queue.Queue[tuple[Any, ...]] = queue.Queue()
    halt = threading.Event()  # ours, so a failure stops the threads without touching `stop`
    threads = [_KindWatch(r, listers[r.kind], versions[r.kind], events, halt, opts)
               for r in opts.resources]
    for thread in threads:
        thread.start()
    failure: WatcherError | None = None
    try:
        while not stop.is_set() and failure is None:
            wait = batcher.seconds_until_due()
            try:
                item = events.get(timeout=_IDLE_POLL if wait is None else min(wait, _IDLE_POLL))
            except queue.Empty:
                item = None
            handled = 0
            while item is not None and failure is None:
                failure = _consume(item, resolver, batcher)
                handled += 1
                if handled >= _DRAIN_MAX:  # under a flood, still look at stop and the clock
                    break
                try:
                    item = events.get_nowait()
                except queue.Empty:
                    item = None
            if batcher.due():
                batcher.flush()
    finally:
        halt.set()
        for thread in threads:
            thread.abort()
        for thread in threads:
            thread.join(timeout=5.0)
        while failure is None:
            try:
                failure = _consume(events.get_nowait(), resolver, batcher)
            except queue.Empty:
                break
        batcher.flush()
    if failure is not None:
        raise failure


def _consume(item: tuple[Any, ...], resolver: Resolver, batcher: Batcher) -> WatcherError | None:
    """Apply one queued item; an object the resolver rejects is logged and skipped."""
    try:
        match item:
            case ("event", kind, event_type, obj):
                batcher.add(resolver.apply(kind, event_type, obj))
            case ("replace", kind, items):
                batcher.add(resolver.replace(kind, items))
            case ("fatal", error):
                return error
    except Exception as exc:  # one malformed object must not stop the cluster's watch
        obj = item[3] if item[0] == "event" else None
        md = obj.get("metadata") if isinstance(obj, dict) else None
        md = md if isinstance(md, dict) else {}
        log.error("kubernetes watcher: skipped %s %s %s/%s: %s: %s", item[0], item[1],
                  md.get("namespace", ""), md.get("name", ""), type(exc).__name__, exc)
    return None


def run_in_cluster(
    cluster: str,
    sink: Sink,
    stop: threading.Event,
    *,
    agent: str | None = None,
    options: WatchOptions | None = None,
) -> None:
    """Entry point for a pod: service-account credentials, then :func:`run_watcher`.

    Raises ``kubernetes.config.ConfigException`` when not running in a pod.
    """
    from kubernetes import config

    configuration = k8s.Configuration()
    config.load_incluster_config(client_configuration=configuration)
    with k8s.ApiClient(configuration) as api_client:
        run_watcher(api_client, cluster, sink, stop, agent=agent, options=options)
