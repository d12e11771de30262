"""External dependencies and window diff on the shop graph (real LadybugDB)."""

from __future__ import annotations

import pytest

from queries.diff import window_diff
from queries.external import external_dependencies
from queries.window import Window
from tests.queries import shop
from topology.store.base import GraphStore

A = Window(*shop.A)
B = Window(*shop.B)
NAMES = {s.id: s.name for s in shop.SERVICES}


def test_external_dependencies(shop_store: GraphStore) -> None:
    found = external_dependencies(shop_store, A)
    assert [(d.hostname, d.naming, d.requests, d.errors, d.error_rate) for d in found] == [
        ("api.stripe.com", ("host",), 40, 0, 0.0),
        ("Unknown External Service", ("unknown",), 10, 10, 1.0),
    ]
    assert [(c.service.name, c.requests, c.errors) for c in found[0].callers] == [
        ("payments", 40, 0)]
    assert found[0].p99_ms == pytest.approx(349.0)  # 40 calls at 300 ms, bin (250, 350]
    assert found[1].service.id == shop.UNKNOWN.id


def test_external_clients_are_not_external_dependencies(shop_store: GraphStore) -> None:
    assert shop.CLIENTS.id not in {d.service.id for d in external_dependencies(shop_store, B)}
    assert [d.hostname for d in external_dependencies(shop_store, B)] == ["api.stripe.com"]


def test_window_diff(shop_store: GraphStore) -> None:
    diff = window_diff(shop_store, A, B)
    assert [NAMES[s] for s in diff.services_added] == ["recommendations"]
    assert sorted(NAMES[s] for s in diff.services_removed) == [
        "Unknown External Service", "postgres"]
    assert [(NAMES[a], NAMES[b]) for a, b in diff.edges_added] == [
        ("frontend", "recommendations")]
    assert sorted((NAMES[a], NAMES[b]) for a, b in diff.edges_removed) == [
        ("checkout", "postgres"), ("payments", "Unknown External Service"),
        ("payments", "checkout"), ("payments", "postgres")]
    changes = {(NAMES[c.client], NAMES[c.server]): c for c in diff.edges_changed}
    assert set(changes) == {("frontend", "checkout"), ("payments", "api.stripe.com")}
    assert changes[("frontend", "checkout")].reasons == ("error_rate",)
    assert changes[("frontend", "checkout")].error_rate_after == pytest.approx(0.6)
    assert changes[("payments", "api.stripe.com")].reasons == ("p99",)
    assert changes[("payments", "api.stripe.com")].p99_after_ms == pytest.approx(2490.0)


def test_window_diff_with_a_filter_and_thresholds(shop_store: GraphStore) -> None:
    diff = window_diff(shop_store, A, B, "server.external = true", p99_ratio=10)
    assert [NAMES[s] for s in diff.services_removed] == ["Unknown External Service"]
    assert diff.edges_changed == ()
    assert diff.services_added == ()
