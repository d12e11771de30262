"""The pure resolver: objects in, leases out, stamped by an injected clock."""

from __future__ import annotations

from typing import Any

import pytest

from collectors.kubernetes.resolver import Resolver
from tests.collectors.kubernetes import cluster as k
from tests.collectors.kubernetes.cluster import T0_EPOCH, FakeClock

NS = "shop"


def feed(resolver: Resolver, *objs: dict[str, Any], event: str = "ADDED") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for obj in objs:
        out += resolver.apply(obj["kind"], event, obj)
    return out


def who(lease: dict[str, Any]) -> tuple[str, str, str | None]:
    wl = lease["workload"]
    return (wl["kind"], wl["name"], lease.get("to"))


def _deploy_chain() -> list[dict[str, Any]]:
    dep = k.deployment(NS, "checkout")
    rs = k.replicaset(NS, "checkout-5d8f7c9b4", owner=dep)
    return [dep, rs, k.pod(NS, "checkout-5d8f7c9b4-x2x9z", owner=rs, ip="10.1.0.5")]


def _bare_rs() -> list[dict[str, Any]]:
    rs = k.replicaset(NS, "legacy-rs", labels={"app": "legacy"})
    return [rs, k.pod(NS, "legacy-rs-abcde", owner=rs, ip="10.1.0.5")]


def _statefulset() -> list[dict[str, Any]]:
    sts = k.statefulset(NS, "postgres")
    return [sts, k.pod(NS, "postgres-0", owner=sts, ip="10.1.0.5")]


def _daemonset() -> list[dict[str, Any]]:
    ds = k.daemonset("kube-system", "node-exporter")
    return [ds, k.pod("kube-system", "node-exporter-7xk2p", owner=ds, ip="10.1.0.5")]


def _rollout_rs() -> list[dict[str, Any]]:
    rs = k.replicaset(NS, "canary-6c7d8")
    rs["metadata"]["ownerReferences"] = [{"apiVersion": "argoproj.io/v1alpha1",
                                          "kind": "Rollout", "name": "canary", "uid": "r-1",
                                          "controller": True}]
    return [rs, k.pod(NS, "canary-6c7d8-qqq", owner=rs, ip="10.1.0.5")]


def _job() -> list[dict[str, Any]]:
    return [k.pod(NS, "migrate-x7", owner=k.job(NS, "migrate"), ip="10.1.0.5")]


def _unowned() -> list[dict[str, Any]]:
    return [k.pod(NS, "debug", owner=None, ip="10.1.0.5")]


def _rs_not_seen() -> list[dict[str, Any]]:
    rs = k.replicaset(NS, "checkout-5d8f7c9b4", owner=k.deployment(NS, "checkout"))
    return [k.pod(NS, "checkout-5d8f7c9b4-x2x9z", owner=rs, ip="10.1.0.5")]


@pytest.mark.parametrize(("objects", "expected"), [
    (_deploy_chain, ("Deployment", "checkout", NS)),
    (_bare_rs, ("ReplicaSet", "legacy-rs", NS)),
    (_statefulset, ("StatefulSet", "postgres", NS)),
    (_daemonset, ("DaemonSet", "node-exporter", "kube-system")),
    (_rollout_rs, ("ReplicaSet", "canary-6c7d8", NS)),
    (_job, None),
    (_unowned, None),
    (_rs_not_seen, None),
], ids=["pod-rs-deployment", "bare-replicaset", "statefulset", "daemonset",
        "rs-of-other-controller", "job-pod", "unowned-pod", "rs-not-seen-yet"])
def test_owner_resolution(objects: Any, expected: tuple[str, str, str] | None) -> None:
    leases = feed(Resolver("prod", FakeClock()), *objects())
    if expected is None:
        assert leases == []
        return
    assert len(leases) == 1
    wl = leases[0]["workload"]
    assert (wl["kind"], wl["name"], wl["namespace"], wl["cluster"]) == (*expected, "prod")
    assert leases[0]["ip"] == "10.1.0.5" and "to" not in leases[0]
    assert leases[0]["from"] == T0_EPOCH  # the pod's startTime: stable across restarts
    assert not {"pod-template-hash", "controller-revision-hash"} & wl["labels"].keys()


def test_pod_waits_for_its_replicaset_then_resolves() -> None:
    resolver = Resolver("prod", FakeClock())
    dep, rs, pod = _deploy_chain()
    assert feed(resolver, pod) == []
    assert feed(resolver, dep) == []
    assert [who(x) for x in feed(resolver, rs)] == [("Deployment", "checkout", None)]


def test_lease_lifecycle_open_ip_change_terminal_delete() -> None:
    clock = FakeClock()
    resolver = Resolver("prod", clock)
    dep, rs, _ = _deploy_chain()
    feed(resolver, dep, rs)
    pending = k.pod(NS, "checkout-5d8f7c9b4-aaaaa", owner=rs, ip=None)
    assert feed(resolver, pending) == []

    running = k.pod(NS, "checkout-5d8f7c9b4-aaaaa", owner=rs, ip="10.1.0.7")
    running["metadata"]["uid"] = pending["metadata"]["uid"]
    (opened,) = feed(resolver, running, event="MODIFIED")
    assert (opened["ip"], opened["from"], "to" in opened) == ("10.1.0.7", T0_EPOCH, False)

    clock.now += 10
    moved = k.pod(NS, "checkout-5d8f7c9b4-aaaaa", owner=rs, ip="10.1.0.8")
    moved["metadata"]["uid"] = pending["metadata"]["uid"]
    closed, reopened = feed(resolver, moved, event="MODIFIED")
    assert (closed["ip"], closed["from"], closed["to"]) == ("10.1.0.7", T0_EPOCH, clock.now)
    assert (reopened["ip"], reopened["from"], "to" in reopened) == ("10.1.0.8", clock.now, False)

    clock.now += 10
    done = k.pod(NS, "checkout-5d8f7c9b4-aaaaa", owner=rs, ip="10.1.0.8", phase="Failed")
    done["metadata"]["uid"] = pending["metadata"]["uid"]
    (ended,) = feed(resolver, done, event="MODIFIED")
    assert (ended["ip"], ended["to"]) == ("10.1.0.8", clock.now)
    assert feed(resolver, done, event="DELETED") == []
    assert resolver.open_leases() == []


@pytest.mark.parametrize("old_delete_seen_first", [True, False],
                         ids=["delete-then-reuse", "reuse-before-delete-seen"])
def test_ip_reused_by_another_workload(old_delete_seen_first: bool) -> None:
    clock = FakeClock()
    resolver = Resolver("prod", clock)
    dep, rs, old = _deploy_chain()
    sts = k.statefulset(NS, "postgres")
    feed(resolver, dep, rs, sts, old)
    new = k.pod(NS, "postgres-0", owner=sts, ip="10.1.0.5", started="2026-11-21T10:30:00Z")
    clock.now = T0_EPOCH + 1200
    out = feed(resolver, old, event="DELETED") if old_delete_seen_first else []
    clock.now = T0_EPOCH + 2400
    out += feed(resolver, new)
    out += [] if old_delete_seen_first else feed(resolver, old, event="DELETED")
    closed, opened = out
    assert who(closed)[:2] == ("Deployment", "checkout") and closed["from"] == T0_EPOCH
    assert who(opened) == ("StatefulSet", "postgres", None)
    assert closed["to"] <= opened["from"]  # leases on one IP never overlap
    assert closed["to"] == (T0_EPOCH + 1200 if old_delete_seen_first else T0_EPOCH + 1800)
    assert opened["from"] == T0_EPOCH + 1800  # the new pod's startTime
    assert [who(x) for x in resolver.open_leases()] == [("StatefulSet", "postgres", None)]


def test_host_network_pod_holds_ports_not_the_node_ip() -> None:
    resolver = Resolver("prod", FakeClock())
    ds = k.daemonset("kube-system", "node-agent")
    agent = k.pod("kube-system", "node-agent-abcde", owner=ds, ip="192.168.1.10",
                  host_network=True, ports=(9100, 8080))
    leases = feed(resolver, ds, agent)
    assert [(x["ip"], x.get("port")) for x in leases] == [
        ("192.168.1.10", 8080), ("192.168.1.10", 9100)]


def _service_world(resolver: Resolver, clock: FakeClock) -> tuple[dict[str, Any], ...]:
    dep, rs, pod1 = _deploy_chain()
    pod2 = k.pod(NS, "checkout-5d8f7c9b4-b7b7b", owner=rs, ip="10.1.0.6")
    canary = k.deployment(NS, "checkout-canary")
    crs = k.replicaset(NS, "checkout-canary-77f9d", owner=canary)
    cpod = k.pod(NS, "checkout-canary-77f9d-c1c1c", owner=crs, ip="10.1.0.9",
                 labels={"app": "checkout", "track": "canary"})
    feed(resolver, dep, rs, pod1, pod2, canary, crs, cpod)
    return dep, rs, pod1, pod2, canary, crs, cpod


@pytest.mark.parametrize(("selector", "cluster_ip", "expected"), [
    ({"app": "checkout"}, "10.96.0.20", ("Deployment", "checkout")),  # 2 pods beat the canary's 1
    ({"track": "canary"}, "10.96.0.21", ("Deployment", "checkout-canary")),
    ({"app": "nothing"}, "10.96.0.22", None),
    (None, "10.96.0.23", None),  # selector-less: endpoints managed by hand
    ({"app": "checkout"}, "None", None),  # headless
], ids=["most-pods-wins", "canary-own-service", "selects-nothing", "no-selector", "headless"])
def test_service_cluster_ip_maps_to_selected_workload(
    selector: dict[str, str] | None, cluster_ip: str, expected: tuple[str, str] | None,
) -> None:
    clock = FakeClock()
    resolver = Resolver("prod", clock)
    _service_world(resolver, clock)
    svc = k.service(NS, "checkout", selector=selector, cluster_ip=cluster_ip)
    leases = feed(resolver, svc)
    if expected is None:
        assert leases == []
        return
    (lease,) = leases
    assert (lease["ip"], who(lease)[:2], lease["from"]) == (cluster_ip, expected, T0_EPOCH)


def test_service_follows_pods_and_selector_changes_and_deletion() -> None:
    clock = FakeClock()
    resolver = Resolver("prod", clock)
    svc = k.service(NS, "db", selector={"app": "postgres"}, cluster_ip="10.96.0.30")
    assert feed(resolver, svc) == []  # nothing selected yet
    sts = k.statefulset(NS, "postgres")
    (pod_lease, svc_lease) = feed(resolver, sts, k.pod(NS, "postgres-0", owner=sts, ip="10.1.0.5"))
    assert (pod_lease["ip"], svc_lease["ip"]) == ("10.1.0.5", "10.96.0.30")
    assert who(svc_lease) == ("StatefulSet", "postgres", None)

    clock.now += 5
    feed(resolver, *_deploy_chain())
    svc["spec"]["selector"] = {"app": "checkout"}
    closed, opened = feed(resolver, svc, event="MODIFIED")
    assert who(closed) == ("StatefulSet", "postgres", clock.now)
    assert (who(opened), opened["from"]) == (("Deployment", "checkout", None), clock.now)

    clock.now += 5
    (gone,) = feed(resolver, svc, event="DELETED")
    assert (gone["ip"], who(gone)) == ("10.96.0.30", ("Deployment", "checkout", clock.now))


def test_workload_label_change_reemits_open_leases_with_same_start() -> None:
    clock = FakeClock()
    resolver = Resolver("prod", clock)
    dep, rs, pod = _deploy_chain()
    svc = k.service(NS, "checkout", selector={"app": "checkout"}, cluster_ip="10.96.0.20")
    feed(resolver, dep, rs, pod, svc)
    clock.now += 60
    dep["metadata"]["annotations"] = {"topology.io/team": "payments"}
    updated = feed(resolver, dep, event="MODIFIED")
    assert sorted((x["ip"], x["from"], x["workload"]["labels"]["topology.io/team"])
                  for x in updated) == [("10.1.0.5", T0_EPOCH, "payments"),
                                        ("10.96.0.20", T0_EPOCH, "payments")]
    assert all("to" not in x for x in updated)
    dep["status"]["readyReplicas"] = 1  # status churn only: nothing to say
    assert feed(resolver, dep, event="MODIFIED") == []


def test_replace_treats_missing_objects_as_deleted() -> None:
    clock = FakeClock()
    resolver = Resolver("prod", clock)
    dep, rs, pod = _deploy_chain()
    other = k.pod(NS, "checkout-5d8f7c9b4-zzzzz", owner=rs, ip="10.1.0.6")
    feed(resolver, dep, rs, pod, other)
    clock.now += 1
    out = resolver.replace("Pod", [other])
    assert [(x["ip"], x.get("to")) for x in out] == [("10.1.0.5", clock.now)]
    assert [x["ip"] for x in resolver.open_leases()] == ["10.1.0.6"]
    out = resolver.replace("ReplicaSet", [])
    assert [(x["ip"], x.get("to")) for x in out] == [("10.1.0.6", clock.now)]


def test_unknown_kind_and_event_type_are_errors() -> None:
    resolver = Resolver("prod", FakeClock())
    with pytest.raises(ValueError, match="unknown kind 'Job'"):
        resolver.apply("Job", "ADDED", k.job(NS, "x"))
    with pytest.raises(ValueError, match="unexpected event type 'BOOKMARK'"):
        resolver.apply("Pod", "BOOKMARK", {})
