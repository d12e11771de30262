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
from topology.ingest.pipeline import Ingestor
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
