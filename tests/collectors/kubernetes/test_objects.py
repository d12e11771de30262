"""Parsing the API's wire JSON into the views the resolver reads."""

from __future__ import annotations

from typing import Any

import pytest

from collectors.kubernetes.objects import (
    OwnerRef,
    parse_meta,
    parse_pod,
    parse_service,
    parse_time,
    selects,
)


@pytest.mark.parametrize(("status", "spec", "ips", "ports", "active"), [
    ({"phase": "Running", "podIP": "10.1.0.5", "podIPs": [{"ip": "10.1.0.5"}, {"ip": "fd00::5"}]},
     {}, ("10.1.0.5", "fd00::5"), (), True),
    ({"phase": "Running", "podIP": "10.1.0.5"}, {}, ("10.1.0.5",), (), True),
    ({"phase": "Pending"}, {}, (), (), False),
    ({"phase": "Succeeded", "podIP": "10.1.0.5"}, {}, ("10.1.0.5",), (), False),
    ({"phase": "Running", "podIP": "192.168.1.10"},
     {"hostNetwork": True, "containers": [
         {"ports": [{"containerPort": 9100}, {"containerPort": 53, "protocol": "UDP"}]},
         {"ports": [{"containerPort": 8080, "protocol": "TCP"}]}]},
     ("192.168.1.10",), (8080, 9100), True),
], ids=["dual-stack", "podIP-only", "pending", "succeeded", "host-network-tcp-ports"])
def test_parse_pod(status: dict[str, Any], spec: dict[str, Any], ips: tuple[str, ...],
                   ports: tuple[int, ...], active: bool) -> None:
    pod = parse_pod({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec,
                     "status": status})
    assert (pod.ips, pod.ports, pod.active) == (ips, ports, active)


@pytest.mark.parametrize(("spec", "ips"), [
    ({"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1", "fd00:96::1"]},
     ("10.96.0.1", "fd00:96::1")),
    ({"clusterIP": "10.96.0.1"}, ("10.96.0.1",)),
    ({"clusterIP": "None", "clusterIPs": ["None"]}, ()),
    ({"type": "ExternalName", "externalName": "db.example.com"}, ()),
], ids=["dual-stack", "clusterIP-only", "headless", "external-name"])
def test_parse_service_cluster_ips(spec: dict[str, Any], ips: tuple[str, ...]) -> None:
    assert parse_service({"metadata": {"name": "s", "namespace": "ns"}, "spec": spec}
                         ).cluster_ips == ips


@pytest.mark.parametrize(("text", "epoch"), [
    ("2026-11-21T10:00:00Z", 1795255200.0),
    ("2026-11-21T11:00:00+01:00", 1795255200.0),
    ("yesterday", None),
    (None, None),
])
def test_parse_time(text: str | None, epoch: float | None) -> None:
    assert parse_time(text) == epoch


def test_controller_reference_is_the_one_marked_controller() -> None:
    meta = parse_meta({"metadata": {"name": "p", "namespace": "ns", "ownerReferences": [
        {"kind": "ConfigMap", "name": "x", "uid": "1"},
        {"kind": "ReplicaSet", "name": "web-5d8f", "uid": "2", "controller": True}]}})
    assert meta.controller == OwnerRef("ReplicaSet", "web-5d8f", "2")
    assert parse_meta({"metadata": {"ownerReferences": [{"kind": "X", "name": "y"}]}}
                      ).controller is None


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ({"app": "web"}, {"app": "web", "tier": "1"}, True),
    ({"app": "web", "track": "canary"}, {"app": "web"}, False),
    ({}, {"app": "web"}, False),  # an empty selector selects nothing for a Service
])
def test_selects(selector: dict[str, str], labels: dict[str, str], expected: bool) -> None:
    assert selects(selector, labels) is expected
