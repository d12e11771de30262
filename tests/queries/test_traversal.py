"""Dependencies, blast radius and recovery order on the shop graph (real LadybugDB)."""

from __future__ import annotations

import pytest

from queries.recovery import components, recovery_order, stages
from queries.services import UnknownService
from queries.traversal import LONG_LIST, Direction, blast_radius, dependencies, health
from queries.window import Thresholds, Window
from tests.queries import shop
from topology.store.base import GraphStore

A = Window(*shop.A)
B = Window(*shop.B)
NAMES = {s.id: s.name for s in shop.SERVICES}


def named(ids: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(NAMES[i] for i in ids)


# (root, direction, depth, window, [(name, distance, path names)])
DEPENDENCIES = [
    (shop.FRONTEND, Direction.DOWNSTREAM, 5, A, [
        ("checkout", 1, ("frontend", "checkout")),
        ("postgres", 2, ("frontend", "checkout", "postgres")),
        ("payments", 2, ("frontend", "checkout", "payments")),
        ("api.stripe.com", 3, ("frontend", "checkout", "payments", "api.stripe.com")),
        ("Unknown External Service", 3,
         ("frontend", "checkout", "payments", "Unknown External Service")),
    ]),
    (shop.FRONTEND, Direction.DOWNSTREAM, 1, A, [("checkout", 1, ("frontend", "checkout"))]),
    (shop.FRONTEND, Direction.DOWNSTREAM, 1, B, [
        ("checkout", 1, ("frontend", "checkout")),
        ("recommendations", 1, ("frontend", "recommendations")),
    ]),
    (shop.POSTGRES, Direction.UPSTREAM, 2, A, [
        ("checkout", 1, ("postgres", "checkout")),
        ("payments", 1, ("postgres", "payments")),
        ("frontend", 2, ("postgres", "checkout", "frontend")),
    ]),
    (shop.STRIPE, Direction.DOWNSTREAM, 5, A, []),
]


@pytest.mark.parametrize(("root", "direction", "depth", "window", "expected"), DEPENDENCIES)
def test_dependencies(shop_store: GraphStore, root, direction, depth, window, expected) -> None:
    result = dependencies(shop_store, root.id, window, direction=direction, depth=depth)
    assert result.root.id == root.id
    assert [(d.service.name, d.distance, named(d.path)) for d in result.services] == expected


def test_depth_is_bounded(shop_store: GraphStore) -> None:
    with pytest.raises(ValueError, match="depth"):
        dependencies(shop_store, shop.FRONTEND.id, A, depth=0)


def test_unknown_root(shop_store: GraphStore) -> None:
    with pytest.raises(UnknownService):
        dependencies(shop_store, "k8s:nowhere", A)


def test_blast_radius_of_payments(shop_store: GraphStore) -> None:
    result = blast_radius(shop_store, shop.PAYMENTS.id, A)
    assert result.summary == "3 dependent services, 1 degraded"
    assert [(d.service.name, d.distance, named(d.path), d.degraded) for d in result.dependents] == [
        ("checkout", 1, ("checkout", "payments"), True),  # serves 75 calls, 5 errors: 6.7%
        ("frontend", 2, ("frontend", "checkout", "payments"), False),
        ("External Clients", 3, ("External Clients", "frontend", "checkout", "payments"), False),
    ]
    checkout = result.dependents[0]
    assert (checkout.requests, checkout.error_rate) == (75, pytest.approx(5 / 75))
    # External Clients serve nothing: their health is the calls they make
    assert result.dependents[2].requests == 200


def test_blast_radius_thresholds(shop_store: GraphStore) -> None:
    lenient = blast_radius(shop_store, shop.PAYMENTS.id, A, thresholds=Thresholds(0.1, 1000))
    assert lenient.summary == "3 dependent services, 0 degraded"
    strict = blast_radius(shop_store, shop.PAYMENTS.id, A, thresholds=Thresholds(0.5, 50))
    assert [d.degraded for d in strict.dependents] == [True, False, False]


def test_blast_radius_of_postgres_in_window_b(shop_store: GraphStore) -> None:
    # pairs are kept with first/last seen: postgres pairs were last seen in window A
    summary = blast_radius(shop_store, shop.POSTGRES.id, B).summary
    assert summary == "0 dependent services, 0 degraded"
    result = blast_radius(shop_store, shop.CHECKOUT.id, B, depth=1)
    # frontend's calls to checkout fail 60% of the time, but what frontend serves is healthy
    assert result.summary == "1 dependent service, 0 degraded"


def test_recovery_order_of_all(shop_store: GraphStore) -> None:
    order = recovery_order(shop_store, A)
    assert [[s.name for s in stage.services] for stage in order.stages] == [
        ["api.stripe.com", "Unknown External Service", "postgres"],
        ["checkout", "payments"],
        ["frontend"],
        ["External Clients"],
    ]
    assert [named(c) for c in order.stages[1].cycles] == [("checkout", "payments")]
    assert all(not stage.cycles for i, stage in enumerate(order.stages) if i != 1)


def test_recovery_order_of_some_includes_their_dependencies(shop_store: GraphStore) -> None:
    order = recovery_order(shop_store, B, [shop.FRONTEND.id])
    assert [[s.name for s in stage.services] for stage in order.stages] == [
        ["api.stripe.com", "recommendations"], ["payments"], ["checkout"], ["frontend"]]


def test_recovery_order_of_an_unknown_service(shop_store: GraphStore) -> None:
    with pytest.raises(UnknownService, match="ghost"):
        recovery_order(shop_store, A, ["ghost"])


# (graph, components, stages)
GRAPHS = [
    ({}, [], []),
    ({"a": ["b"], "b": []}, [["b"], ["a"]], [[["b"]], [["a"]]]),
    ({"a": ["b"], "b": ["a"]}, [["a", "b"]], [[["a", "b"]]]),
    ({"a": ["a"]}, [["a"]], [[["a"]]]),
    ({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []},
     [["d"], ["b"], ["c"], ["a"]], [[["d"]], [["b"], ["c"]], [["a"]]]),
    ({"a": ["b"], "b": ["c"], "c": ["b", "d"], "d": [], "e": ["a"]},
     [["d"], ["b", "c"], ["a"], ["e"]], [[["d"]], [["b", "c"]], [["a"]], [["e"]]]),
]


@pytest.mark.parametrize(("graph", "comps", "staged"), GRAPHS)
def test_components_and_stages(graph: dict, comps: list, staged: list) -> None:
    assert components(graph) == comps
    assert stages(graph) == staged


def test_components_of_a_long_chain_need_no_recursion() -> None:
    chain = {str(i): [str(i + 1)] for i in range(5000)} | {"5000": ["0"]}
    assert len(components(chain)) == 1


def test_health_is_the_same_through_the_list_and_the_grouped_pass(
    shop_store: GraphStore,
) -> None:
    ids = [shop.CHECKOUT.id, shop.CLIENTS.id]
    ghosts = [f"ghost{i}" for i in range(LONG_LIST)]
    short = health(shop_store, ids, A)
    grouped = health(shop_store, ids + ghosts, A)
    assert short == grouped
    assert (short[shop.CHECKOUT.id].requests, short[shop.CHECKOUT.id].errors) == (75, 5)
    assert short[shop.CLIENTS.id].requests == 200  # serves nothing: the calls it makes
