"""Service map and service detail on the shop graph (real LadybugDB), exact answers."""

from __future__ import annotations

import pytest

from queries.service_map import PathCount, service_detail, service_map
from queries.services import UnknownService
from queries.window import Window
from tests.queries import shop
from tests.queries.corpus import CORPUS
from topology.store.base import GraphStore

A = Window(*shop.A)
NAMES = {s.id: s.name for s in shop.SERVICES}
ALL_A = {
    ("External Clients", "frontend"), ("frontend", "checkout"), ("checkout", "payments"),
    ("payments", "checkout"), ("payments", "api.stripe.com"), ("checkout", "postgres"),
    ("payments", "postgres"), ("payments", "Unknown External Service"),
}
PAYMENTS_OUT = {("payments", "checkout"), ("payments", "api.stripe.com"),
                ("payments", "postgres"), ("payments", "Unknown External Service")}


def pairs(store: GraphStore, text: str) -> set[tuple[str, str]]:
    return {(NAMES[e.client], NAMES[e.server]) for e in service_map(store, A, text).edges}


# (filter, the edges of window A it keeps) -- the Metoro examples first
FILTERS = [
    ("server.namespace = shop", {("External Clients", "frontend"), ("checkout", "payments"),
                                 ("frontend", "checkout"), ("payments", "checkout")}),
    ("client.namespace = shop", ALL_A - {("External Clients", "frontend")}),
    ("server.service.name = api.stripe.com", {("payments", "api.stripe.com")}),
    ("client.service.name = checkout", {("checkout", "payments"), ("checkout", "postgres")}),
    ("v1.traces", {("frontend", "checkout")}),
    ("", ALL_A),
    ("service.name = postgres", {("checkout", "postgres"), ("payments", "postgres")}),
    ("service.namespace != data", ALL_A - {("checkout", "postgres"), ("payments", "postgres")}),
    ("server.external = true", {("payments", "api.stripe.com"),
                                ("payments", "Unknown External Service")}),
    ("client.external = true", {("External Clients", "frontend")}),
    ("not server.external = true and client.external = false",
     {("frontend", "checkout"), ("checkout", "payments"), ("payments", "checkout"),
      ("checkout", "postgres"), ("payments", "postgres")}),
    ("status >= 500", {("frontend", "checkout"), ("checkout", "payments")}),
    ("error = true", {("frontend", "checkout"), ("checkout", "payments"),
                      ("payments", "Unknown External Service")}),
    ("error = false", ALL_A - {("payments", "Unknown External Service")}),
    ("protocol = postgres", {("checkout", "postgres"), ("payments", "postgres")}),
    ("method = post", {("frontend", "checkout"), ("checkout", "payments"),
                       ("payments", "checkout"), ("payments", "api.stripe.com")}),
    ("path startswith /api", {("frontend", "checkout")}),
    ('path =~ "^/v1/charges?$"', {("checkout", "payments"), ("payments", "api.stripe.com")}),
    ("client.label.team = payments", PAYMENTS_OUT),
    ("server.label.tier in [db, web]", {("External Clients", "frontend"),
                                        ("checkout", "postgres"), ("payments", "postgres")}),
    ("client.label.team contains ay", PAYMENTS_OUT),
    ("server.label.tier endswith eb", {("External Clients", "frontend")}),
    ('client.label.team =~ "^pay"', PAYMENTS_OUT),
    ("service.label.team !~ web", ALL_A - {("External Clients", "frontend"),
                                           ("frontend", "checkout")}),
    ("server.kind = StatefulSet", {("checkout", "postgres"), ("payments", "postgres")}),
    ('client.kind in ["External client"]', {("External Clients", "frontend")}),
    ("status = 2xx server.namespace = shop", {("External Clients", "frontend"),
                                              ("frontend", "checkout"), ("checkout", "payments"),
                                              ("payments", "checkout")}),
    # buckets holding any error drop out: checkout -> payments has one bucket, with errors
    ("(server.cluster = prod or server.external = true) and not error = true",
     ALL_A - {("payments", "Unknown External Service"), ("checkout", "payments")}),
    ("client.namespace = shop and (v1.traces or charge)",
     {("frontend", "checkout"), ("checkout", "payments"), ("payments", "api.stripe.com")}),
]


@pytest.mark.parametrize(("text", "expected"), FILTERS, ids=[t or "<empty>" for t, _ in FILTERS])
def test_filters_select_exact_edges(shop_store: GraphStore, text: str, expected: set) -> None:
    assert pairs(shop_store, text) == expected


def test_every_corpus_filter_runs_on_ladybug(shop_store: GraphStore) -> None:
    for text, _ in CORPUS:
        service_map(shop_store, A, text)


def test_edge_figures(shop_store: GraphStore) -> None:
    edges = {(NAMES[e.client], NAMES[e.server]): e for e in service_map(shop_store, A).edges}
    edge = edges[("frontend", "checkout")]
    assert (edge.requests, edge.errors) == (70, 5)
    assert edge.error_rate == pytest.approx(5 / 70)
    assert edge.request_rate == pytest.approx(70 / 600)
    # 20 calls in (10, 15] ms and 50 in (75, 100] ms, interpolated inside the bin
    assert (edge.p50_ms, edge.p95_ms, edge.p99_ms) == pytest.approx((82.5, 98.25, 99.65))
    assert edge.protocols == ("http",)
    assert edge.top_paths == (PathCount("/api/v1/checkout", 50),
                              PathCount("/api/v1/traces/search", 20))
    unknown = edges[("payments", "Unknown External Service")]
    assert (unknown.requests, unknown.errors, unknown.error_rate) == (10, 10, 1.0)
    assert unknown.protocols == ("tcp",)
    assert edges[("External Clients", "frontend")].requests == 200


def test_path_filter_counts_only_matching_calls(shop_store: GraphStore) -> None:
    (edge,) = service_map(shop_store, A, "v1.traces").edges
    assert edge.requests == 20
    assert edge.top_paths == (PathCount("/api/v1/traces/search", 20),)


def test_services_are_the_edge_ends(shop_store: GraphStore) -> None:
    result = service_map(shop_store, A, "server.external = true")
    assert [s.name for s in result.services] == [
        "api.stripe.com", "Unknown External Service", "payments"]
    assert [s.external for s in result.services] == [True, True, False]
    assert result.services[2].labels == ("team=payments", "tier=api")


def test_top_paths_are_capped(shop_store: GraphStore) -> None:
    edges = service_map(shop_store, A, "client.service.name = frontend", top_paths=1).edges
    assert edges[0].top_paths == (PathCount("/api/v1/checkout", 50),)


def test_service_detail(shop_store: GraphStore) -> None:
    detail = service_detail(shop_store, shop.CHECKOUT.id, A)
    assert detail.service.name == "checkout"
    assert [s.name for s in detail.callers] == ["frontend", "payments"]
    assert [s.name for s in detail.callees] == ["postgres", "payments"]
    assert (detail.requests_in, detail.errors_in) == (75, 5)
    assert (detail.requests_out, detail.errors_out) == (130, 4)
    assert {(NAMES[e.client], NAMES[e.server]) for e in detail.incoming} == {
        ("frontend", "checkout"), ("payments", "checkout")}


def test_service_detail_of_an_unknown_service(shop_store: GraphStore) -> None:
    with pytest.raises(UnknownService, match="nope"):
        service_detail(shop_store, "nope", A)
