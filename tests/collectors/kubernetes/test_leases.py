"""LeaseBook: start/end times and the no-overlap rule, holder by holder."""

from __future__ import annotations

from typing import Any

import pytest

from collectors.kubernetes.leases import LeaseBook
from tests.collectors.kubernetes.cluster import FakeClock

NOW = 5000.0


def wl(name: str, **labels: str) -> dict[str, Any]:
    return {"cluster": "prod", "namespace": "shop", "name": name, "kind": "Deployment",
            "labels": labels}


def brief(leases: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(x["ip"], x.get("port"), x["workload"]["name"], x["from"], x.get("to"))
            for x in leases]


@pytest.mark.parametrize(("first_start", "previous_end", "expected_from"), [
    (1000.0, None, 1000.0),  # the pod's startTime
    (None, None, NOW),  # unknown start: the clock
    (9000.0, None, NOW),  # a start in the future (skew): clamped to now
    (1000.0, 3000.0, 3000.0),  # never before the address's previous lease ended
])
def test_first_lease_start(first_start: float | None, previous_end: float | None,
                           expected_from: float) -> None:
    clock = FakeClock(NOW)
    book = LeaseBook(clock)
    if previous_end is not None:
        clock.now = previous_end
        book.reconcile("pod/old", {("10.0.0.1", None): wl("old")}, 0.0)
        book.forget("pod/old")
        clock.now = NOW
    (opened,) = book.reconcile("pod/a", {("10.0.0.1", None): wl("a")}, first_start)
    assert opened["from"] == expected_from and "to" not in opened


def test_later_leases_of_a_holder_start_at_the_clock() -> None:
    clock = FakeClock(NOW)
    book = LeaseBook(clock)
    book.reconcile("pod/a", {("10.0.0.1", None): wl("a")}, 1000.0)
    clock.now = NOW + 10
    assert brief(book.reconcile("pod/a", {("10.0.0.2", None): wl("a")}, 1000.0)) == [
        ("10.0.0.1", None, "a", 1000.0, NOW + 10), ("10.0.0.2", None, "a", NOW + 10, None)]


def test_claim_of_a_held_address_closes_the_old_lease_at_the_new_start() -> None:
    clock = FakeClock(NOW)
    book = LeaseBook(clock)
    book.reconcile("pod/a", {("10.0.0.1", None): wl("a")}, 1000.0)
    out = book.reconcile("pod/b", {("10.0.0.1", None): wl("b")}, 4000.0)
    assert brief(out) == [("10.0.0.1", None, "a", 1000.0, 4000.0),
                          ("10.0.0.1", None, "b", 4000.0, None)]
    assert book.forget("pod/a") == []  # its late deletion says nothing more
    assert brief(book.open_leases()) == [("10.0.0.1", None, "b", 4000.0, None)]


def test_label_change_reissues_the_same_lease_and_workload_change_replaces_it() -> None:
    clock = FakeClock(NOW)
    book = LeaseBook(clock)
    addr = ("192.168.1.10", 9100)
    book.reconcile("pod/a", {addr: wl("a", team="x")}, 1000.0)
    (same,) = book.reconcile("pod/a", {addr: wl("a", team="y")}, 1000.0)
    assert (same["from"], same["port"], same["workload"]["labels"]) == (1000.0, 9100, {"team": "y"})
    assert book.reconcile("pod/a", {addr: wl("a", team="y")}, 1000.0) == []
    clock.now = NOW + 1
    assert brief(book.reconcile("pod/a", {addr: wl("b")}, 1000.0)) == [
        ("192.168.1.10", 9100, "a", 1000.0, NOW + 1), ("192.168.1.10", 9100, "b", NOW + 1, None)]
