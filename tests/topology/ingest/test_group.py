"""Group commit with threads against the real embedded store."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.topology.ingest.delivery_helpers import totals, wait_for
from topology.ingest.group import GroupCommit
from topology.model import Batch, CallBucket
from topology.store.base import GraphStore


def _bucket(requests: int, **fields: Any) -> CallBucket:
    return CallBucket(client="k8s:/shop/Deployment/web", server="k8s:/shop/Deployment/db",
                      bucket=1_763_700_000, width=60, protocol="http", requests=requests,
                      **fields)


def _run(group: GroupCommit, batches: list[Batch]) -> dict[str, Any]:
    """Apply each batch on its own thread while writes are held, then let them go."""
    outcomes: dict[str, Any] = {}

    def apply(batch: Batch) -> None:
        try:
            outcomes[batch.id] = group.apply(batch)
        except Exception as exc:  # the outcome under test
            outcomes[batch.id] = exc

    threads = [threading.Thread(target=apply, args=(b,)) for b in batches]
    with group.exclusive():
        for thread in threads:
            thread.start()
        wait_for(lambda: group.waiting == len(batches), 30, "every batch to wait")
    for thread in threads:
        thread.join(60)
    return outcomes


def test_batches_waiting_together_are_one_transaction_each_counted_once(
    embedded_store: GraphStore,
) -> None:
    group = GroupCommit(embedded_store, clock=lambda: 1_763_700_100)
    assert group.apply(Batch(id="old", calls=[_bucket(1)])) is True
    batches = [Batch(id=f"b-{n}", calls=[_bucket(n + 1)]) for n in range(6)]
    batches.append(Batch(id="old", calls=[_bucket(100)]))  # applied before: skipped

    outcomes = _run(group, batches)

    assert outcomes == {**{f"b-{n}": True for n in range(6)}, "old": False}
    assert (group.commits, group.largest) == (2, 7)
    assert totals(embedded_store)[0] == 1 + sum(range(1, 7))


@pytest.mark.parametrize(("bounds", "largest"), [
    ({"max_batches": 1}, 1),
    ({"max_batches": 3}, 3),
    ({"max_rows": 4}, 2),  # two rows per batch
    ({"max_rows": 1}, 1),  # a batch larger than the bound still goes, alone
])
def test_groups_are_bounded(embedded_store: GraphStore, bounds: dict[str, int],
                            largest: int) -> None:
    group = GroupCommit(embedded_store, clock=lambda: 1_763_700_100, **bounds)
    outcomes = _run(group, [Batch(id=f"b-{n}", calls=[_bucket(1), _bucket(1, method="GET")])
                            for n in range(7)])
    assert all(outcomes.values()) and len(outcomes) == 7
    assert group.largest == largest
    assert totals(embedded_store)[0] == 14


def test_a_failing_batch_fails_alone_and_the_rest_of_its_group_is_written(
    embedded_store: GraphStore,
) -> None:
    group = GroupCommit(embedded_store, clock=lambda: 1_763_700_100)
    group.apply(Batch(id="first", calls=[_bucket(1)]))
    poison = Batch(id="poison", calls=[_bucket(1, histogram=[1])])  # cannot merge: 1 bin
    good = [Batch(id=f"good-{n}", calls=[_bucket(2)]) for n in range(3)]

    outcomes = _run(group, [good[0], poison, *good[1:]])

    assert isinstance(outcomes.pop("poison"), ValueError)
    assert outcomes == {f"good-{n}": True for n in range(3)}
    assert totals(embedded_store)[0] == 1 + 2 * 3


def test_max_batches_must_be_positive(embedded_store: GraphStore) -> None:
    with pytest.raises(ValueError, match="max_batches must be at least 1"):
        GroupCommit(embedded_store, clock=lambda: 0, max_batches=0)


def test_a_group_failing_for_the_store_is_not_written_batch_by_batch(
    embedded_store: GraphStore,
) -> None:
    group = GroupCommit(embedded_store, clock=lambda: 1_763_700_100)
    group.apply(Batch(id="first", calls=[_bucket(1)]))
    group.isolate = lambda exc: False  # e.g. the store ran out of memory
    poison = Batch(id="poison", calls=[_bucket(1, histogram=[1])])
    good = Batch(id="good", calls=[_bucket(2)])

    outcomes = _run(group, [good, poison])

    assert all(isinstance(outcome, ValueError) for outcome in outcomes.values())
    assert group.commits == 2  # "first", then the one failed group
    assert totals(embedded_store)[0] == 1


@pytest.mark.parametrize(("linger", "commits"), [(60.0, 1), (0.0, 2)])
def test_writer_lingers_for_batches_announced_and_still_being_built(
    embedded_store: GraphStore, linger: float, commits: int,
) -> None:
    group = GroupCommit(embedded_store, clock=lambda: 1_763_700_100, linger=linger)
    group.expect()  # another thread is building its batch
    outcomes: dict[str, bool] = {}
    first = threading.Thread(target=lambda: outcomes.update(
        first=group.apply(Batch(id="first", calls=[_bucket(1)]))))
    first.start()
    if linger:
        wait_for(lambda: group.waiting == 1, 30, "the writer to linger")
    else:
        first.join(60)
    outcomes["late"] = group.apply(Batch(id="late", calls=[_bucket(2)]), expected=True)
    first.join(60)
    assert outcomes == {"first": True, "late": True}
    assert group.commits == commits
    assert totals(embedded_store)[0] == 3


def test_a_cancelled_announcement_ends_the_lingering(embedded_store: GraphStore) -> None:
    group = GroupCommit(embedded_store, clock=lambda: 1_763_700_100, linger=60.0)
    group.expect()
    done = threading.Thread(target=group.apply, args=(Batch(id="b", calls=[_bucket(1)]),))
    done.start()
    wait_for(lambda: group.waiting == 1, 30, "the writer to linger")
    group.cancel()  # that build failed
    done.join(60)
    assert not done.is_alive() and group.commits == 1


def test_ingest_reports_its_timings_per_stage(embedded_store: GraphStore) -> None:
    from topology.ingest.pipeline import Ingestor
    from topology.settings import Settings

    ingestor = Ingestor(embedded_store, Settings(), clock=lambda: 1_763_700_060.0)
    timings: dict[str, float] = {}
    call = {"timestamp": 1_763_700_000.0, "side": "server", "source": {"ip": "203.0.113.9"},
            "destination": {"workload": {"namespace": "shop", "name": "web",
                                         "kind": "Deployment"}},
            "protocol": "http", "method": "GET", "path": "/", "status": 200,
            "duration_ms": 1.0}
    assert ingestor.ingest({"batch_id": "t-1", "agent": "a", "calls": [call]}, timings)
    assert set(timings) == {"queue", "build", "commit"}
    assert all(seconds >= 0 for seconds in timings.values())
    assert totals(embedded_store)  # the batch was written
