"""The watcher end to end: a real kubernetes.client.ApiClient against a real HTTP
server speaking list/watch (tests/collectors/kubernetes/apiserver.py)."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import jsonschema
import pytest
from kubernetes import client as k8s

from collectors.kubernetes import WatcherError, WatchOptions, run_watcher
from tests.collectors.kubernetes import cluster as k
from tests.collectors.kubernetes.apiserver import ApiState, serve
from tests.collectors.kubernetes.cluster import T0_EPOCH, FakeClock

NS = "shop"
DEADLINE = 15.0  # seconds to wait for the watcher to report something
SCHEMA = json.loads(resources.files("topology.ingest").joinpath("events.schema.json").read_text())
FAST = WatchOptions(page_size=2, watch_timeout_seconds=60, request_timeout=60.0,
                    backoff_initial=0.01, backoff_max=0.05, max_delay=0.02)


class Sink:
    """Collects batches (checked against the batch schema) and waits on them."""

    def __init__(self) -> None:
        self.batches: list[dict[str, Any]] = []
        self.invalid: list[str] = []
        self._cond = threading.Condition()
        self._validator = jsonschema.Draft202012Validator(SCHEMA)

    def __call__(self, batch: dict[str, Any]) -> None:
        errors = [e.message for e in self._validator.iter_errors(batch)]
        with self._cond:
            self.invalid += errors
            self.batches.append(batch)
            self._cond.notify_all()

    def entries(self) -> list[dict[str, Any]]:
        with self._cond:
            return [e for b in self.batches for e in b["endpoints"]]

    def leases(self) -> dict[tuple[Any, ...], dict[str, Any]]:
        """Latest state of every lease by identity (ip, port, from)."""
        out: dict[tuple[Any, ...], dict[str, Any]] = {}
        for e in self.entries():
            out[(e["ip"], e.get("port"), e["from"])] = e
        return out

    def open_by_ip(self) -> dict[str, tuple[str, str]]:
        return {ip: (e["workload"]["kind"], e["workload"]["name"])
                for (ip, _, _), e in self.leases().items() if "to" not in e}

    def wait_for(self, what: str, predicate: Callable[[Sink], bool]) -> None:
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate(self), timeout=DEADLINE)
        assert ok, f"timed out waiting for {what}; leases: {self.leases()}"


class Watching:
    """run_watcher in a thread against the test API server."""

    def __init__(self, url: str, clock: FakeClock, options: WatchOptions = FAST) -> None:
        self.sink = Sink()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.api = k8s.ApiClient(k8s.Configuration(host=url))
        self._thread = threading.Thread(target=self._run, args=(clock, options), daemon=True)

    def _run(self, clock: FakeClock, options: WatchOptions) -> None:
        try:
            run_watcher(self.api, "prod", self.sink, self.stop, clock=clock, options=options)
        except BaseException as exc:  # reported by close()
            self.error = exc

    def __enter__(self) -> Watching:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(timeout=DEADLINE)
        self.api.close()
        assert not self._thread.is_alive(), "run_watcher did not return after stop"
        assert self.error is None, f"run_watcher failed: {self.error!r}"
        assert self.sink.invalid == [], self.sink.invalid


@pytest.fixture
def api() -> Iterator[tuple[str, ApiState]]:
    with serve() as (url, state):
        yield url, state


def _shop(state: ApiState) -> dict[str, dict[str, Any]]:
    """A small realistic cluster; returns its objects by a short name."""
    dep = k.deployment(NS, "checkout", labels={"app": "checkout", "env": "prod"}, annotations={
        "topology.io/team": "payments", "topology.io/tier": "1",
        "topology.io/slo-p99-ms": "250", "topology.io/slo-error-rate": "0.001"})
    sts = k.statefulset(NS, "postgres", labels={"app": "postgres", "team": "data"})
    ds = k.daemonset("kube-system", "node-exporter",
                     labels={"app": "node-exporter", "app.kubernetes.io/part-of": "monitoring"})
    bare = k.replicaset(NS, "legacy-rs", labels={"app": "legacy"})
    for obj in (dep, sts, ds, bare):
        state.put(obj)
    rs = k.replicaset(NS, "checkout-5d8f7c9b4", owner=dep)
    state.put(rs)
    objs = {"dep": dep, "sts": sts, "ds": ds, "bare": bare, "rs": rs}
    pods = {
        "checkout-1": k.pod(NS, "checkout-5d8f7c9b4-x2x9z", owner=rs, ip="10.1.0.5"),
        "checkout-2": k.pod(NS, "checkout-5d8f7c9b4-q8w7e", owner=rs, ip="10.1.0.6"),
        "postgres-0": k.pod(NS, "postgres-0", owner=sts, ip="10.1.1.10"),
        "exporter": k.pod("kube-system", "node-exporter-7xk2p", owner=ds, ip="10.1.2.3"),
        "legacy": k.pod(NS, "legacy-rs-abcde", owner=bare, ip="10.1.3.4"),
        "job": k.pod(NS, "migrate-x7", owner=k.job(NS, "migrate"), ip="10.1.4.4"),
    }
    for obj in pods.values():
        state.put(obj)
    state.put(k.service(NS, "checkout", selector={"app": "checkout"}, cluster_ip="10.96.0.20"))
    state.put(k.service(NS, "db", selector={"app": "postgres"}, cluster_ip="10.96.0.30"))
    state.put(k.service(NS, "db-headless", selector={"app": "postgres"}, cluster_ip="None"))
    return {**objs, **pods}


EXPECTED_OWNERS = {
    "10.1.0.5": ("Deployment", "checkout"),
    "10.1.0.6": ("Deployment", "checkout"),
    "10.1.1.10": ("StatefulSet", "postgres"),
    "10.1.2.3": ("DaemonSet", "node-exporter"),
    "10.1.3.4": ("ReplicaSet", "legacy-rs"),
    "10.96.0.20": ("Deployment", "checkout"),
    "10.96.0.30": ("StatefulSet", "postgres"),
}


@pytest.mark.parametrize(("ip", "labels"), [
    ("10.1.0.5", {"topology.io/team": "payments", "topology.io/tier": "1",
                  "topology.io/slo-p99-ms": "250", "topology.io/slo-error-rate": "0.001",
                  "env": "prod"}),
    ("10.96.0.20", {"topology.io/team": "payments", "topology.io/tier": "1"}),
    ("10.1.1.10", {"topology.io/team": "data", "team": "data"}),
    ("10.1.2.3", {"topology.io/team": "monitoring"}),
], ids=["deployment-annotations", "service-ip-inherits", "team-label", "part-of-fallback"])
def test_initial_list_resolves_owners_service_ips_and_labels(
    api: tuple[str, ApiState], ip: str, labels: dict[str, str],
) -> None:
    url, state = api
    _shop(state)
    with Watching(url, FakeClock()) as w:
        w.sink.wait_for("initial leases", lambda s: s.open_by_ip() == EXPECTED_OWNERS)
        lease = next(e for e in w.sink.entries() if e["ip"] == ip)
        assert labels.items() <= lease["workload"]["labels"].items()
        assert lease["workload"]["cluster"] == "prod"
        assert lease["from"] == T0_EPOCH
    pages = [r for r in state.requests_for("Pod") if not r.watch]
    assert len(pages) > 1 and "continue" in pages[-1].query  # the list was paged


def test_watch_events_open_and_close_leases(api: tuple[str, ApiState]) -> None:
    url, state = api
    objs = _shop(state)
    clock = FakeClock()
    with Watching(url, clock) as w:
        w.sink.wait_for("initial leases", lambda s: s.open_by_ip() == EXPECTED_OWNERS)
        new = k.pod(NS, "checkout-5d8f7c9b4-n3w00", owner=objs["rs"], ip=None,
                    started="2026-11-21T11:00:00Z")
        state.put(new)  # Pending, no IP yet: no lease
        new["status"].update(phase="Running", podIP="10.1.0.77", podIPs=[{"ip": "10.1.0.77"}])
        state.put(new)
        w.sink.wait_for("lease of the new pod", lambda s: "10.1.0.77" in s.open_by_ip())
        assert w.sink.leases()[("10.1.0.77", None, T0_EPOCH + 3600)]["workload"]["name"] \
            == "checkout"

        clock.now = T0_EPOCH + 7200
        state.delete("Pod", NS, "checkout-5d8f7c9b4-n3w00")
        w.sink.wait_for("closed lease", lambda s: "10.1.0.77" not in s.open_by_ip())
        closed = w.sink.leases()[("10.1.0.77", None, T0_EPOCH + 3600)]
        assert closed["to"] == T0_EPOCH + 7200

        clock.now = T0_EPOCH + 7300
        state.delete("Service", NS, "db")
        w.sink.wait_for("service lease closed", lambda s: "10.96.0.30" not in s.open_by_ip())
        assert w.sink.leases()[("10.96.0.30", None, T0_EPOCH)]["to"] == T0_EPOCH + 7300


def test_pod_ip_reused_by_another_workload(api: tuple[str, ApiState]) -> None:
    url, state = api
    objs = _shop(state)
    clock = FakeClock()
    with Watching(url, clock) as w:
        w.sink.wait_for("initial leases", lambda s: s.open_by_ip() == EXPECTED_OWNERS)
        clock.now = T0_EPOCH + 5000
        state.delete("Pod", NS, "legacy-rs-abcde")
        w.sink.wait_for("old pod gone", lambda s: "10.1.3.4" not in s.open_by_ip())
        clock.now = T0_EPOCH + 6000
        reuse = k.pod(NS, "postgres-1", owner=objs["sts"], ip="10.1.3.4",
                      started="2026-11-21T11:30:00Z")
        state.put(reuse)
        w.sink.wait_for("reused IP", lambda s: s.open_by_ip().get("10.1.3.4")
                        == ("StatefulSet", "postgres"))
        old = w.sink.leases()[("10.1.3.4", None, T0_EPOCH)]
        new = w.sink.leases()[("10.1.3.4", None, T0_EPOCH + 5400)]
        assert (old["workload"]["name"], old["to"]) == ("legacy-rs", T0_EPOCH + 5000)
        assert (new["workload"]["name"], "to" in new) == ("postgres", False)


def pod_watches(state: ApiState) -> list[str]:
    """The resourceVersion of every watch request for pods, in order."""
    return [r.query["resourceVersion"] for r in state.requests_for("Pod") if r.watch]


def test_resumes_from_last_resource_version_after_dropped_watch(
    api: tuple[str, ApiState],
) -> None:
    url, state = api
    objs = _shop(state)
    with Watching(url, FakeClock()) as w:
        w.sink.wait_for("initial leases", lambda s: s.open_by_ip() == EXPECTED_OWNERS)
        assert state.wait_for(lambda: len(pod_watches(state)) == 1, DEADLINE)
        first_rv = pod_watches(state)[0]
        rv_a = state.put(k.pod(NS, "postgres-a", owner=objs["sts"], ip="10.1.1.21"))
        w.sink.wait_for("pod before the drop", lambda s: "10.1.1.21" in s.open_by_ip())
        state.drop()
        assert state.wait_for(lambda: len(pod_watches(state)) == 2, DEADLINE)
        state.put(k.pod(NS, "postgres-b", owner=objs["sts"], ip="10.1.1.22"))
        w.sink.wait_for("pod after the drop", lambda s: "10.1.1.22" in s.open_by_ip())
        rv_mark = state.bookmark("Pod")
        state.drop()  # the bookmark is delivered, then the line goes dead
        assert state.wait_for(lambda: len(pod_watches(state)) == 3, DEADLINE)
        state.put(k.pod(NS, "postgres-c", owner=objs["sts"], ip="10.1.1.23"))
        w.sink.wait_for("pod after the bookmark", lambda s: "10.1.1.23" in s.open_by_ip())
    assert pod_watches(state)[:3] == [first_rv, str(rv_a), str(rv_mark)]
    requests = state.requests_for("Pod")
    assert all(r.query.get("allowWatchBookmarks") == "true" for r in requests if r.watch)
    assert len([r for r in requests if not r.watch and "continue" not in r.query]) == 1


def test_watch_ended_by_server_timeout_resumes_without_listing(
    api: tuple[str, ApiState],
) -> None:
    url, state = api
    objs = _shop(state)
    short = dataclasses.replace(FAST, watch_timeout_seconds=1)
    with Watching(url, FakeClock(), short) as w:
        w.sink.wait_for("initial leases", lambda s: s.open_by_ip() == EXPECTED_OWNERS)
        rv = state.put(k.pod(NS, "postgres-t", owner=objs["sts"], ip="10.1.1.31"))
        w.sink.wait_for("pod", lambda s: "10.1.1.31" in s.open_by_ip())
        assert state.wait_for(lambda: str(rv) in pod_watches(state)[1:], DEADLINE)
    assert all(r.query["timeoutSeconds"] == "1" for r in state.requests_for("Pod") if r.watch)
    assert len([r for r in state.requests_for("Pod")
                if not r.watch and "continue" not in r.query]) == 1


@pytest.mark.parametrize("cut", [False, True], ids=["410-mid-stream", "410-on-resume"])
def test_relists_after_410_gone(api: tuple[str, ApiState], cut: bool) -> None:
    url, state = api
    objs = _shop(state)
    clock = FakeClock()
    with Watching(url, clock) as w:
        w.sink.wait_for("initial leases", lambda s: s.open_by_ip() == EXPECTED_OWNERS)
        clock.now = T0_EPOCH + 9000
        # Changes whose events were compacted away: only a relist can see them.
        state.delete("Pod", NS, "legacy-rs-abcde", hidden=True)
        state.put(k.pod(NS, "postgres-9", owner=objs["sts"], ip="10.1.1.99"), hidden=True)
        relist_rv = state.rv
        state.expire("Pod", cut=cut)
        w.sink.wait_for("relist", lambda s: "10.1.1.99" in s.open_by_ip()
                        and "10.1.3.4" not in s.open_by_ip())
        assert w.sink.leases()[("10.1.3.4", None, T0_EPOCH)]["to"] == T0_EPOCH + 9000
        assert w.sink.open_by_ip()["10.1.0.5"] == ("Deployment", "checkout")
        assert state.wait_for(lambda: any(
            r.watch and r.query["resourceVersion"] == str(relist_rv)
            for r in state.requests_for("Pod")), DEADLINE), "no watch from the relist's version"
    lists = [r for r in state.requests_for("Pod") if not r.watch and "continue" not in r.query]
    assert len(lists) == 2


def test_forbidden_list_stops_with_rbac_hint(api: tuple[str, ApiState]) -> None:
    url, state = api
    state.forbid("ReplicaSet")
    with k8s.ApiClient(k8s.Configuration(host=url)) as client, \
            pytest.raises(WatcherError, match=r"403.*ReplicaSet.*rbac.yaml"):
        run_watcher(client, "prod", Sink(), threading.Event(), options=FAST)


def test_server_errors_are_retried_on_list_and_watch(api: tuple[str, ApiState]) -> None:
    url, state = api
    objs = _shop(state)
    state.fail("Pod", 3)  # the first pod list fails three times
    with Watching(url, FakeClock()) as w:
        w.sink.wait_for("initial leases", lambda s: s.open_by_ip() == EXPECTED_OWNERS)
        assert state.wait_for(lambda: len(pod_watches(state)) == 1, DEADLINE)
        rv = state.put(k.pod(NS, "postgres-e", owner=objs["sts"], ip="10.1.1.41"))
        w.sink.wait_for("pod", lambda s: "10.1.1.41" in s.open_by_ip())
        state.fail("Pod", 2)
        state.drop()  # the resumed watch meets two 500s first
        assert state.wait_for(lambda: len(pod_watches(state)) == 4, DEADLINE)
        state.put(k.pod(NS, "postgres-f", owner=objs["sts"], ip="10.1.1.42"))
        w.sink.wait_for("pod after the errors", lambda s: "10.1.1.42" in s.open_by_ip())
    assert pod_watches(state)[1:4] == [str(rv)] * 3  # resumed each time, never relisted
    lists = [r for r in state.requests_for("Pod") if not r.watch and "continue" not in r.query]
    assert len(lists) == 4  # three failed initial lists, then one that worked


def test_malformed_object_is_skipped_and_the_watch_goes_on(
    api: tuple[str, ApiState], caplog: pytest.LogCaptureFixture,
) -> None:
    url, state = api
    objs = _shop(state)
    with Watching(url, FakeClock()) as w:
        w.sink.wait_for("initial leases", lambda s: s.open_by_ip() == EXPECTED_OWNERS)
        bad = k.pod(NS, "postgres-bad", owner=objs["sts"], ip="10.1.1.51")
        bad["spec"]["containers"] = ["not-a-container"]
        state.put(bad)
        state.put(k.pod(NS, "postgres-good", owner=objs["sts"], ip="10.1.1.52"))
        w.sink.wait_for("the next pod", lambda s: "10.1.1.52" in s.open_by_ip())
        assert "10.1.1.51" not in w.sink.open_by_ip()
    assert any("skipped event Pod shop/postgres-bad" in r.getMessage() for r in caplog.records)


def test_run_in_cluster_needs_a_pod_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes.config import ConfigException

    from collectors.kubernetes import run_in_cluster

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigException):
        run_in_cluster("prod", Sink(), threading.Event())
