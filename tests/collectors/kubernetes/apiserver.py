"""A small real HTTP server speaking the Kubernetes list/watch protocol.

Not a mock of our code: it stands in for the API server, which cannot run on
this machine. It serves the six collections the watcher uses, with the wire
behaviour the watcher must cope with:

* ``GET <collection>[?limit=N&continue=T]``: a ``<Kind>List`` with
  ``metadata.resourceVersion`` (and ``continue`` while pages remain);
* ``GET <collection>?watch=1&resourceVersion=RV``: a chunked stream of
  newline-delimited events after RV (ADDED/MODIFIED/DELETED/BOOKMARK), ending
  after ``timeoutSeconds``; a resourceVersion older than the compaction point
  gets an ``ERROR`` event with a 410 Status ("too old resource version");
* test controls: :meth:`ApiState.drop` cuts watch connections mid-stream,
  :meth:`ApiState.expire` compacts history and sends 410 to open watches,
  ``hidden=True`` changes state without a watch event (lost to compaction),
  :meth:`ApiState.forbid` answers 403 for a collection;
* ``fieldSelector=a.b=value[,...]`` on lists and watches (equality only, as
  ``spec.nodeName=<node>`` is used); a watch skips events of objects it does
  not select.

Every request is recorded (path and query) for assertions.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

# path -> (kind, apiVersion)
COLLECTIONS: dict[str, tuple[str, str]] = {
    "/api/v1/pods": ("Pod", "v1"),
    "/api/v1/services": ("Service", "v1"),
    "/apis/apps/v1/replicasets": ("ReplicaSet", "apps/v1"),
    "/apis/apps/v1/deployments": ("Deployment", "apps/v1"),
    "/apis/apps/v1/statefulsets": ("StatefulSet", "apps/v1"),
    "/apis/apps/v1/daemonsets": ("DaemonSet", "apps/v1"),
}
PATH_OF_KIND = {kind: path for path, (kind, _) in COLLECTIONS.items()}


@dataclass
class Request:
    path: str
    query: dict[str, str]

    @property
    def watch(self) -> bool:
        return self.query.get("watch") in ("1", "true")


@dataclass
class ApiState:
    """The cluster's objects, their event history and the test's controls."""

    rv: int = 1000
    objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(
        default_factory=lambda: {p: {} for p in COLLECTIONS})
    history: dict[str, list[tuple[int, str, dict[str, Any]]]] = field(
        default_factory=lambda: {p: [] for p in COLLECTIONS})
    compacted: dict[str, int] = field(default_factory=lambda: {p: 0 for p in COLLECTIONS})
    requests: list[Request] = field(default_factory=list)
    forbidden: set[str] = field(default_factory=set)
    failures: dict[str, int] = field(default_factory=dict)  # path -> 500s still to answer
    drops: int = 0
    expiries: dict[str, int] = field(default_factory=lambda: {p: 0 for p in COLLECTIONS})
    closing: bool = False
    snapshots: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    cond: threading.Condition = field(default_factory=threading.Condition)

    # -- changes -----------------------------------------------------------

    def put(self, obj: dict[str, Any], *, hidden: bool = False) -> int:
        """Create or update ``obj`` (ADDED or MODIFIED); returns its resourceVersion."""
        path = PATH_OF_KIND[obj["kind"]]
        md = obj["metadata"]
        key = (md["namespace"], md["name"])
        with self.cond:
            self.rv += 1
            md.setdefault("uid", str(uuid.uuid4()))
            md["resourceVersion"] = str(self.rv)
            kind = "MODIFIED" if key in self.objects[path] else "ADDED"
            self.objects[path][key] = json.loads(json.dumps(obj))
            if not hidden:
                self.history[path].append((self.rv, kind, self.objects[path][key]))
            self.cond.notify_all()
            return self.rv

    def delete(self, kind: str, namespace: str, name: str, *, hidden: bool = False) -> int:
        path = PATH_OF_KIND[kind]
        with self.cond:
            obj = self.objects[path].pop((namespace, name))
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            if not hidden:
                self.history[path].append((self.rv, "DELETED", obj))
            self.cond.notify_all()
            return self.rv

    def bookmark(self, kind: str) -> int:
        """A BOOKMARK at a new resourceVersion (as when other kinds changed meanwhile)."""
        path = PATH_OF_KIND[kind]
        with self.cond:
            self.rv += 1
            mark = {"kind": kind, "apiVersion": COLLECTIONS[path][1],
                    "metadata": {"resourceVersion": str(self.rv)}}
            self.history[path].append((self.rv, "BOOKMARK", mark))
            self.cond.notify_all()
            return self.rv

    def drop(self) -> None:
        """Cut every open watch connection without ending the chunked stream."""
        with self.cond:
            self.drops += 1
            self.cond.notify_all()

    def expire(self, kind: str, *, cut: bool = False) -> None:
        """Compact the kind's history: resuming from before now is refused with 410.

        Open watches get the 410 as an ERROR event, or with ``cut`` their
        connection drops first, so the 410 comes when the client resumes.
        """
        path = PATH_OF_KIND[kind]
        with self.cond:
            self.compacted[path] = self.rv
            self.history[path] = []
            self.expiries[path] += 1
            if cut:
                self.drops += 1
            self.cond.notify_all()

    def fail(self, kind: str, times: int) -> None:
        """Answer the kind's next ``times`` requests with 500 (an API server in trouble)."""
        with self.cond:
            self.failures[PATH_OF_KIND[kind]] = times

    def forbid(self, kind: str) -> None:
        with self.cond:
            self.forbidden.add(PATH_OF_KIND[kind])

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` (checked on every request and change) or timeout."""
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def requests_for(self, kind: str) -> list[Request]:
        path = PATH_OF_KIND[kind]
        with self.cond:
            return [r for r in self.requests if r.path == path]


def selected(obj: dict[str, Any], field_selector: str | None) -> bool:
    """Field selector semantics for equality terms (``a.b=v`` or ``a.b==v``, comma = and)."""
    for term in filter(None, (field_selector or "").split(",")):
        path, _, wanted = term.partition("=")
        value: Any = obj
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if str(value if value is not None else "") != wanted.removeprefix("="):
            return False
    return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        state = self.server.state
        request = Request(url.path, query)
        with state.cond:
            state.requests.append(request)
            state.cond.notify_all()
            forbidden = url.path in state.forbidden
            failing = state.failures.get(url.path, 0) > 0
            if failing:
                state.failures[url.path] -= 1
            # A drop or expiry after the request arrived applies to it.
            drops, expiries = state.drops, state.expiries.get(url.path, 0)
        if url.path not in COLLECTIONS:
            self._status(404, "NotFound", f"the server could not find {url.path}")
        elif failing:
            self._status(500, "InternalError", "etcdserver: request timed out")
        elif forbidden:
            kind = COLLECTIONS[url.path][0]
            self._status(403, "Forbidden", f"{kind.lower()}s is forbidden: cannot list")
        elif request.watch:
            self._watch(url.path, query, drops, expiries)
        else:
            self._list(url.path, query)

    def _send_json(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, reason: str, message: str) -> None:
        self._send_json(code, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                               "status": "Failure", "message": message, "reason": reason,
                               "code": code})

    def _list(self, path: str, query: dict[str, str]) -> None:
        state = self.server.state
        kind, api_version = COLLECTIONS[path]
        token = query.get("continue")
        with state.cond:
            if token:
                rv, items = token.split(":", 1)[0], state.snapshots.pop(token, None)
                if items is None:
                    self._status(410, "Expired", "the continue token has expired")
                    return
            else:
                rv = str(state.rv)
                items = [json.loads(json.dumps(o))
                         for _, o in sorted(state.objects[path].items())
                         if selected(o, query.get("fieldSelector"))]
        limit = int(query.get("limit", "0") or 0)
        meta: dict[str, Any] = {"resourceVersion": rv}
        if limit and len(items) > limit:
            items, rest = items[:limit], items[limit:]
            next_token = f"{rv}:{uuid.uuid4().hex}"
            with state.cond:
                state.snapshots[next_token] = rest
            meta["continue"] = next_token
        for item in items:
            item.pop("kind", None)  # list items carry no kind/apiVersion on the wire
            item.pop("apiVersion", None)
        self._send_json(200, {"kind": f"{kind}List", "apiVersion": api_version,
                              "metadata": meta, "items": items})

    def _chunk(self, event: dict[str, Any]) -> None:
        data = (json.dumps(event) + "\n").encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch(self, path: str, query: dict[str, str], drops: int, expiries: int) -> None:
        state = self.server.state
        cursor = int(query.get("resourceVersion", "0") or 0)
        deadline = time.monotonic() + int(query.get("timeoutSeconds", "60") or 60)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        with state.cond:
            too_old = cursor < state.compacted[path]
        if too_old:
            self._gone(cursor)
            return
        while True:
            after = cursor
            with state.cond:
                state.cond.wait_for(
                    lambda: state.closing or state.drops != drops
                    or state.expiries[path] != expiries or time.monotonic() >= deadline
                    or any(rv > after for rv, _, _ in state.history[path]),  # noqa: B023
                    timeout=max(0.0, deadline - time.monotonic()))
                # What happened before a drop is delivered first, then the line goes dead.
                pending = [(rv, t, o) for rv, t, o in state.history[path] if rv > cursor]
                cut = state.drops != drops or state.closing
                expired = not cut and state.expiries[path] != expiries
            for rv, event_type, obj in pending:
                if event_type == "BOOKMARK" or selected(obj, query.get("fieldSelector")):
                    self._chunk({"type": event_type, "object": obj})
                cursor = rv
            if cut:
                self._cut()
                return
            if expired:
                self._gone(cursor)
                return
            if not pending and time.monotonic() >= deadline:
                self.wfile.write(b"0\r\n\r\n")
                return

    def _gone(self, cursor: int) -> None:
        self._chunk({"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f"too old resource version: {cursor}", "reason": "Expired", "code": 410}})
        self.wfile.write(b"0\r\n\r\n")

    def _cut(self) -> None:
        self.close_connection = True
        with suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ApiState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@contextmanager
def serve(state: ApiState | None = None) -> Iterator[tuple[str, ApiState]]:
    """Run the server on a free port; yields (base URL, state)."""
    state = state or ApiState()
    server = _Server(state)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,),
                              name="fake-apiserver", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        with state.cond:
            state.closing = True
            state.cond.notify_all()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
