"""Coalescing group commit: batches from several threads folded into one set of rows,
against the real embedded store, with leases and templates in memory and in Redis."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.neo4j_lint import LinterUnavailable, lint_cypher
from tests.topology.ingest.delivery_helpers import batch, expected_totals, totals, wait_for
from topology.ingest.coalesce import MARKERS, Coalescer
from topology.ingest.pipeline import Ingestor, Prepared, prepare
from topology.store.base import GraphStore
from topology.store.statement import Dialect

MakeIngestor = Callable[..., Ingestor]


def _coalescer(ingestor: Ingestor) -> Coalescer:
    assert ingestor.coalescer is not None
    return ingestor.coalescer


def _run(ingestor: Ingestor, payloads: list[dict[str, Any]], *, alone: bool = False,
         joining: int | None = None) -> list[Any]:
    """Ingest each payload on its own thread while writes are held, then let them go
    (once `joining` of them, by default all distinct ids, wait in groups).
    Outcomes in order: True, False, or the exception raised."""
    outcomes: list[Any] = [None] * len(payloads)

    def ingest(n: int) -> None:
        try:
            outcomes[n] = ingestor.ingest(payloads[n], alone=alone)
        except Exception as exc:  # the outcome under test
            outcomes[n] = exc

    coalescer = _coalescer(ingestor)
    threads = [threading.Thread(target=ingest, args=(n,)) for n in range(len(payloads))]
    with coalescer.exclusive():
        for thread in threads:
            thread.start()
        joined = len({p["batch_id"] for p in payloads}) if joining is None else joining
        wait_for(lambda: coalescer.waiting == joined, 30, "every batch to join")
    for thread in threads:
        thread.join(60)
    return outcomes


def test_batches_of_many_threads_are_one_transaction_of_merged_rows(
    make_ingestor: MakeIngestor, embedded_store: GraphStore,
) -> None:
    ingestor = make_ingestor(coalesce=True)
    payloads = [batch(f"b-{n}", 40 + n) for n in range(6)]

    assert _run(ingestor, payloads) == [True] * 6

    coalescer = _coalescer(ingestor)
    assert (coalescer.commits, coalescer.largest) == (1, 6)
    assert coalescer.rows == 5  # frontend -> 5 backends, one minute, one template each
    assert totals(embedded_store) == expected_totals(*payloads)
    # every id of the group was marked: delivered again, each is a duplicate
    assert [ingestor.ingest(p) for p in payloads] == [False] * 6
    assert totals(embedded_store) == expected_totals(*payloads)
    assert (ingestor.stats.batches, ingestor.stats.duplicates) == (12, 6)


def test_a_batch_applied_before_is_a_duplicate_and_folds_nothing(
    make_ingestor: MakeIngestor, embedded_store: GraphStore,
) -> None:
    ingestor = make_ingestor(coalesce=True)
    old = batch("old", 30)
    assert ingestor.ingest(old) is True
    fresh = batch("fresh", 20)

    assert _run(ingestor, [fresh, old], joining=1) == [True, False]

    assert totals(embedded_store) == expected_totals(old, fresh)


def test_the_same_batch_twice_in_one_group_counts_once(
    make_ingestor: MakeIngestor, embedded_store: GraphStore,
) -> None:
    ingestor = make_ingestor(coalesce=True)
    twice, other = batch("twice", 25), batch("other", 10)

    outcomes = _run(ingestor, [twice, other, twice])

    assert outcomes[1] is True and sorted(outcomes[::2]) == [False, True]
    assert _coalescer(ingestor).commits == 1
    assert totals(embedded_store) == expected_totals(twice, other)


def test_a_batch_written_alone_has_a_transaction_of_its_own(
    make_ingestor: MakeIngestor, embedded_store: GraphStore,
) -> None:
    ingestor = make_ingestor(coalesce=True)
    payloads = [batch(f"r-{n}", 10) for n in range(3)]

    assert _run(ingestor, payloads, alone=True) == [True] * 3

    assert (_coalescer(ingestor).commits, _coalescer(ingestor).largest) == (3, 1)
    assert totals(embedded_store) == expected_totals(*payloads)


def test_a_failed_group_raises_in_every_batch_and_writes_nothing(
    make_ingestor: MakeIngestor, embedded_store: GraphStore,
) -> None:
    ingestor = make_ingestor(coalesce=True)
    payloads = [batch(f"f-{n}", 10) for n in range(3)]
    coalescer = _coalescer(ingestor)
    outcomes: list[Any] = []

    def ingest(payload: dict[str, Any]) -> None:
        try:
            outcomes.append(ingestor.ingest(payload))
        except Exception as exc:  # the outcome under test
            outcomes.append(exc)

    threads = [threading.Thread(target=ingest, args=(p,)) for p in payloads]
    with coalescer.exclusive():
        for thread in threads:
            thread.start()
        wait_for(lambda: coalescer.waiting == 3, 30, "every batch to join")
        embedded_store.close()  # the store goes away before the group's write
    for thread in threads:
        thread.join(60)

    assert len(outcomes) == 3 and all(isinstance(o, Exception) for o in outcomes)
    assert len({type(o) for o in outcomes}) == 1  # the same error for the whole group


def test_a_batch_waiting_in_a_failed_group_is_not_a_duplicate_afterwards(
    make_ingestor: MakeIngestor, embedded_store: GraphStore,
) -> None:
    """An id leaves the pending groups when its group fails, so its retry is written."""
    ingestor = make_ingestor(coalesce=True)
    payload = batch("retried", 10)
    coalescer = _coalescer(ingestor)
    coalescer.expect()  # joins as ingest would, then the group fails in its fold
    member = coalescer.join("retried")
    coalescer.folded(member, (), RuntimeError("fold failed"))
    with pytest.raises(RuntimeError, match="another batch of this transaction failed"):
        coalescer.wait(member)

    assert ingestor.ingest(payload, alone=True) is True
    assert totals(embedded_store) == expected_totals(payload)


def test_max_batches_must_be_positive(make_ingestor: MakeIngestor) -> None:
    ingestor = make_ingestor()
    with pytest.raises(ValueError, match="max_batches must be at least 1"):
        Coalescer(ingestor.store, ingestor.templates, ingestor.clock, 60, max_batches=0)


@pytest.mark.parametrize(("bounds", "largest"), [
    ({"max_batches": 2}, 2),
    ({"max_rows": 5}, 1),  # each batch fills a group's rows (5 edges)
])
def test_groups_are_bounded(make_ingestor: MakeIngestor, embedded_store: GraphStore,
                            bounds: dict[str, int], largest: int) -> None:
    ingestor = make_ingestor(coalesce=True)
    coalescer = _coalescer(ingestor)
    for name, value in bounds.items():
        setattr(coalescer, name, value)
    payloads = [batch(f"g-{n}", 10) for n in range(5)]

    assert _run(ingestor, payloads) == [True] * 5

    assert coalescer.largest == largest
    assert totals(embedded_store) == expected_totals(*payloads)


def test_the_marker_check_reads_the_ids_applied_and_lints_clean_for_neo4j(
    make_ingestor: MakeIngestor, embedded_store: GraphStore,
) -> None:
    ingestor = make_ingestor(coalesce=True)
    assert ingestor.ingest(batch("seen", 3)) is True
    found = embedded_store.read(MARKERS, {"ids": ["seen", "unseen"]})
    assert [row["id"] for row in found] == ["seen"]
    try:
        problems = lint_cypher([(MARKERS.name, MARKERS.text(Dialect.NEO4J), {"ids": []})])
    except LinterUnavailable as exc:
        pytest.fail(str(exc))
    assert problems == []


def _ingest_on_thread(ingestor: Ingestor, payload: dict[str, Any],
                      outcomes: list[Any]) -> threading.Thread:
    def ingest() -> None:
        try:
            outcomes.append(ingestor.ingest(payload))
        except Exception as exc:  # the outcome under test
            outcomes.append(exc)

    thread = threading.Thread(target=ingest)
    thread.start()
    return thread


@pytest.mark.parametrize(("reserve", "linger", "commits", "largest"), [
    (0, 60.0, 1, 3),  # waits for every batch announced
    (1, 60.0, 2, 2),  # leaves one to the next group (it keeps the build helper busy)
    (0, 0.0, 3, 1),  # does not linger
])
def test_a_writer_lingers_until_no_more_than_reserve_batches_are_being_built(
    make_ingestor: MakeIngestor, embedded_store: GraphStore, reserve: int, linger: float,
    commits: int, largest: int,
) -> None:
    ingestor = make_ingestor(coalesce=True)
    coalescer = _coalescer(ingestor)
    coalescer.reserve, coalescer.linger = reserve, linger
    first, *built = [batch(f"l-{n}", 10) for n in range(3)]
    gates = [threading.Event() for _ in built]
    outcomes: list[Any] = []

    def ingest_built(payload: dict[str, Any], gate: threading.Event) -> None:
        def build() -> Prepared:  # as a build helper would, once let go
            gate.wait(60)
            return prepare(payload, ingestor.leases, ingestor.dns, ingestor.folder, 60)

        outcomes.append(ingestor.ingest_prepared(build))

    threads = [threading.Thread(target=ingest_built, args=pair)
               for pair in zip(built, gates, strict=True)]
    for thread in threads:
        thread.start()  # announced while being built
    wait_for(lambda: coalescer._expected == len(built), 30, "the batches to be announced")
    threads.append(_ingest_on_thread(ingestor, first, outcomes))
    for n, gate in enumerate([None, *gates]):
        if gate is not None:
            gate.set()
        left = len(built) - n
        taken = not linger or left <= reserve  # the writer takes the group now
        wait_for(lambda left=left, taken=taken: coalescer._expected == left
                 and (coalescer.waiting == 0) == taken, 30, f"{left} left being built")
    for thread in threads:
        thread.join(60)

    assert outcomes == [True] * 3
    assert (coalescer.commits, coalescer.largest) == (commits, largest)
    assert totals(embedded_store) == expected_totals(first, *built)


@pytest.mark.parametrize(("settle", "commits", "largest"), [(60.0, 2, 2), (0.0, 3, 1)])
def test_right_after_a_write_a_writer_waits_settle_for_the_next_batches(
    make_ingestor: MakeIngestor, embedded_store: GraphStore, settle: float, commits: int,
    largest: int,
) -> None:
    """The task threads a write frees take their next messages before they announce
    them: for `settle` seconds after a write, nothing announced still may mean more
    comes (here the second group ends as soon as it is full: two batches)."""
    ingestor = make_ingestor(coalesce=True)
    coalescer = _coalescer(ingestor)
    coalescer.linger, coalescer.settle, coalescer.max_batches = 60.0, settle, 2
    coalescer.reserve = 0
    payloads = [batch(f"s-{n}", 10) for n in range(3)]
    assert ingestor.ingest(payloads[0]) is True  # a write just ended
    outcomes: list[Any] = []
    threads = [_ingest_on_thread(ingestor, payloads[1], outcomes)]
    if settle:
        wait_for(lambda: coalescer.waiting == 1, 30, "the batch to wait in its group")
    else:
        wait_for(lambda: coalescer.commits == 2, 30, "the batch to be written at once")
    threads.append(_ingest_on_thread(ingestor, payloads[2], outcomes))
    for thread in threads:
        thread.join(60)

    assert outcomes == [True, True]
    assert (coalescer.commits, coalescer.largest) == (commits, largest)
    assert totals(embedded_store) == expected_totals(*payloads)


def test_a_lone_batch_with_nothing_announced_is_written_at_once(
    make_ingestor: MakeIngestor, embedded_store: GraphStore,
) -> None:
    """At rest no batch waits for the linger (it would delay freshness for nothing)."""
    ingestor = make_ingestor(coalesce=True)
    coalescer = _coalescer(ingestor)
    coalescer.linger = coalescer.settle = 3600.0  # and no write for ages
    lone = batch("lone", 10)

    assert ingestor.ingest(lone) is True

    assert coalescer.commits == 1
    assert totals(embedded_store) == expected_totals(lone)


@pytest.mark.parametrize(("peak", "commits", "largest"), [(3, 2, 2), (0, 3, 1)])
def test_at_the_end_of_a_burst_a_writer_waits_for_the_batches_still_being_built(
    make_ingestor: MakeIngestor, embedded_store: GraphStore, peak: int, commits: int,
    largest: int,
) -> None:
    """Fewer batches in flight than the worker had at once: nothing follows those
    being built, so the group waits for them (reserve or not) rather than leave
    them a transaction of their own."""
    ingestor = make_ingestor(coalesce=True)
    coalescer = _coalescer(ingestor)
    coalescer.linger, coalescer.settle, coalescer.reserve = 60.0, 0.0, 1
    first, last, built = batch("e-1", 10), batch("e-2", 10), batch("e-3", 10)
    assert ingestor.ingest(first) is True
    gate = threading.Event()
    outcomes: list[Any] = []

    def build() -> Prepared:  # as a build helper would, once let go
        gate.wait(60)
        return prepare(built, ingestor.leases, ingestor.dns, ingestor.folder, 60)

    threads = [threading.Thread(target=lambda: outcomes.append(ingestor.ingest_prepared(build)))]
    threads[0].start()
    wait_for(lambda: coalescer._expected == 1, 30, "the batch being built to be announced")
    coalescer._peak = peak  # as many in flight at once before (0: never more than now)
    threads.append(_ingest_on_thread(ingestor, last, outcomes))
    if peak:
        wait_for(lambda: coalescer.waiting == 1, 30, "the last batch to wait for the other")
    else:
        wait_for(lambda: coalescer.commits == 2, 30, "the last batch to be written alone")
    gate.set()
    for thread in threads:
        thread.join(60)

    assert outcomes == [True, True]
    assert (coalescer.commits, coalescer.largest) == (commits, largest)
    assert totals(embedded_store) == expected_totals(first, last, built)
