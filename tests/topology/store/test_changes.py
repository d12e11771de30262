"""The writer's change log: which cached starts a report makes stale, and who hears
about pairs."""

from __future__ import annotations

import pytest

from topology.model import Batch, CallBucket, Service
from topology.store.changes import TRACKED_STARTS, Changes, changes_of
from topology.store.proxy import StoreProxy

M = 60
T = 1_763_712_000


def batch(*starts: int, client: str = "a", server: str = "b") -> Batch:
    return Batch("x", [], [CallBucket(client, server, start, M, "http") for start in starts])


class Listener:
    def __init__(self) -> None:
        self.seen: list[dict] = []
        self.deleted = 0

    def pairs_seen(self, seen: dict) -> None:
        self.seen.append(seen)

    def pairs_deleted(self) -> None:
        self.deleted += 1


# (case, reports after generation 0 was taken, start asked about, changed)
CASES = [
    ("nothing reported", [], T, False),
    ("a write to that start", [("applied", T)], T, True),
    ("a write to another start", [("applied", T + M)], T, False),
    ("retention below that start", [("expired", T)], T, False),
    ("retention above that start", [("expired", T + M)], T, True),
    ("a write to an unaligned start", [("applied", T + 30)], T + M, True),
    ("retention, then a write elsewhere", [("expired", T + M), ("applied", T + 5 * M)], T,
     True),
]


@pytest.mark.parametrize(("case", "reports", "start", "changed"), CASES,
                         ids=[c[0] for c in CASES])
def test_changed_since(case, reports, start, changed) -> None:
    changes = Changes(M)
    changes.applied([batch(T - 10 * M)], [True])
    taken = changes.generation
    for kind, value in reports:
        if kind == "applied":
            changes.applied([batch(value)], [True])
        else:
            changes.expired(value, pairs_deleted=False)
    assert changes.changed_since(start, taken) is changed


def test_a_start_read_after_a_report_is_fresh() -> None:
    changes = Changes(M)
    changes.applied([batch(T)], [True])
    changes.expired(T + M, pairs_deleted=False)
    assert not changes.changed_since(T, changes.generation)


def test_skipped_batches_report_nothing_and_pairs_merge_their_bounds() -> None:
    changes = Changes(M)
    listener = changes.cache("pairs", Listener)
    changes.applied([batch(T + M), batch(T + 5 * M), batch(T + 9 * M)], [True, False, True])
    assert listener.seen == [{("a", "b"): (T + M, T + 10 * M)}]
    assert not changes.changed_since(T + 5 * M, 0)
    changes.expired(T, pairs_deleted=True)
    changes.expired(T, pairs_deleted=False)
    assert listener.deleted == 1
    assert changes.cache("pairs", Listener) is listener


def test_the_log_is_found_through_wrappers() -> None:
    class Store:
        changes = Changes(M)

    inner = Store()
    wrapped = StoreProxy.__new__(StoreProxy)
    wrapped.inner = inner
    assert changes_of(wrapped) is Store.changes
    assert changes_of(object()) is None


def key(start: int, client: str) -> str:
    return CallBucket(client, "b", start, M, "http").key


# (case, reports after generation 0 was taken, start asked about, keys changed by
# (start, client), or None when unknown)
KEYS = [
    ("nothing reported", [], T, set()),
    ("a write to that start", [("applied", T, "a")], T, {(T, "a")}),
    ("two buckets", [("applied", T, "a"), ("applied", T, "c")], T, {(T, "a"), (T, "c")}),
    ("a write to another start", [("applied", T + M, "a")], T, set()),
    ("a start the newest starts left behind", [("applied", T + TRACKED_STARTS * M, "a")], T,
     None),
    ("late data into a tracked start", [("applied", T + 3 * M, "a"), ("applied", T, "c")], T,
     {(T, "c")}),
    ("retention above that start", [("expired", T + M, "")], T, None),
    ("an unaligned start", [("applied", T + 30, "a")], T, None),
]


@pytest.mark.parametrize(("case", "reports", "start", "changed"), KEYS,
                         ids=[c[0] for c in KEYS])
def test_keys_changed_since(case, reports, start, changed) -> None:
    changes = Changes(M)
    changes.applied([batch(T, client="z")], [True])
    taken = changes.generation
    for kind, value, client in reports:
        if kind == "applied":
            changes.applied([batch(value, client=client)], [True])
        else:
            changes.expired(value, pairs_deleted=False)
    expected = None if changed is None else {key(*written) for written in changed}
    assert changes.keys_changed_since(start, taken) == expected


def test_the_writers_buckets_are_marked_by_their_keys() -> None:
    changes = Changes(M)
    written = batch(T, T + M)
    changes.applied([written], [True], {"k1": written.calls[0], "k2": written.calls[1]})
    assert changes.keys_changed_since(T, 0) == {"k1"}
    assert changes.keys_changed_since(T + M, 0) == {"k2"}


# (case, batch reported after generation 0 was taken or a retention run, changed)
SERVICES = [
    ("calls only", Batch("x", [], [CallBucket("a", "b", T, M, "http")]), False),
    ("services only", Batch("x", [Service("a", "a", "Process", seen=T)], []), True),
    ("retention", None, True),
]


@pytest.mark.parametrize(("case", "reported", "changed"), SERVICES, ids=[c[0] for c in SERVICES])
def test_services_changed_since(case, reported, changed) -> None:
    changes = Changes(M)
    taken = changes.generation
    if reported is None:
        changes.expired(T, pairs_deleted=False)
    else:
        changes.applied([reported], [True])
    assert changes.services_changed_since(taken) is changed
    assert not changes.services_changed_since(changes.generation)


def test_pairs_and_starts_handed_over_by_the_writer_are_what_the_calls_give() -> None:
    """The embedded writer hands its merged buckets and pair bounds over; the report
    must equal the one made from the batches' calls."""
    from topology.store import ladybug_pairs, rows

    calls = [CallBucket("a", "b", T, M, "http"), CallBucket("a", "b", T + 2 * M, M, "http"),
             CallBucket("c", "b", T + M, M, "grpc")]
    sent = [Batch("one", [], calls[:2]), Batch("two", [], calls[2:]), Batch("old", [], calls)]
    keep = [True, True, False]
    made, handed = Changes(M), Changes(M)
    heard = {id(made): Listener(), id(handed): Listener()}
    for changes in (made, handed):
        changes.cache("walk", lambda changes=changes: heard[id(changes)])
    made.applied(sent, keep)
    merged = rows.merge_buckets(calls, ordered=False)
    handed.applied(sent, keep, merged, ladybug_pairs.pairs(merged.values()))
    assert heard[id(made)].seen == heard[id(handed)].seen == [
        {("a", "b"): (T, T + 3 * M), ("c", "b"): (T + M, T + 2 * M)}]
    for start in (T, T + M, T + 2 * M):
        assert made.changed_since(start, 0) and handed.changed_since(start, 0)
        assert made.keys_changed_since(start, 0) == handed.keys_changed_since(start, 0)


def test_an_uncertain_commit_makes_everything_stale_once() -> None:
    changes = Changes(M)
    listener = changes.cache("pairs", Listener)
    changes.applied([batch(T)], [True])
    taken = changes.generation
    changes.uncertain()
    assert changes.changed_since(T + 99 * M, taken)
    assert changes.keys_changed_since(T, taken) is None
    assert changes.services_changed_since(taken)
    assert listener.deleted == 1
    after = changes.generation
    assert not changes.changed_since(T, after)
    assert changes.keys_changed_since(T, after) == set()
    assert not changes.services_changed_since(after)
