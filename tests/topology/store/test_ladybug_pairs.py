"""The embedded store's pairs: CallPair nodes keyed by a hash, one CALLS each."""

from __future__ import annotations

import ladybug
import pytest

from topology.model import Batch, CallBucket, Service
from topology.store import ladybug_schema as q
from topology.store.base import StoreError
from topology.store.ladybug_store import LadybugStore
from topology.store.statement import Statement

T0 = 1_700_000_000 - 1_700_000_000 % 3600
CALL_PAIRS = Statement.same(
    "test.call_pairs", "MATCH (p:CallPair) RETURN p.id AS id, p.client AS client, "
    "p.server AS server, p.last_seen AS last_seen ORDER BY client, server")
RELATIONSHIPS = Statement.same(
    "test.calls", "MATCH (a:Service)-[r:CALLS]->(b:Service) RETURN a.id AS client, "
    "b.id AS server, r.pid AS pid ORDER BY client, server")


def batch(name: str, minute: int, pairs: list[tuple[str, str]], services: list[str]) -> Batch:
    calls = []
    for client, server in pairs:
        row = CallBucket(client, server, T0 + 60 * minute, 60, "http", "GET", "/x")
        row.record(1.0, error=False, status=200)
        calls.append(row)
    ends = [Service(sid, sid.rsplit("/", 1)[1], "Process", seen=T0) for sid in services]
    return Batch(name, ends, calls)


def test_pair_ids_hash_client_and_server_apart() -> None:
    ids = q.pair_ids([("a", "b"), ("b", "a"), ("ab", ""), ("a", "b")])
    assert ids[0] == ids[3] and len(set(ids)) == 3
    assert all(0 <= i < 2**63 for i in ids)


def test_each_pair_has_one_call_pair_and_one_relationship(
    embedded_store: LadybugStore,
) -> None:
    """Created once, then only the CallPair's bounds move; a pair whose server is not
    a stored service gets neither (as relationship CREATE skips it)."""
    a, b, c = (f"process:h/{n}" for n in "abc")
    embedded_store.apply(batch("one", 0, [(a, b), (b, c)], [a, b, c]), now=T0)
    embedded_store.apply(batch("two", 5, [(a, b), (a, "process:h/gone")], [a, b]), now=T0)
    assert embedded_store.read(RELATIONSHIPS) == [  # pid: the CallPair's id, for hops
        {"client": a, "server": b, "pid": q.pair_ids([(a, b)])[0]},
        {"client": b, "server": c, "pid": q.pair_ids([(b, c)])[0]}]
    assert embedded_store.read(CALL_PAIRS) == [
        {"id": q.pair_ids([(a, b)])[0], "client": a, "server": b, "last_seen": T0 + 360},
        {"id": q.pair_ids([(b, c)])[0], "client": b, "server": c, "last_seen": T0 + 60}]


def test_a_pair_whose_id_a_stored_pair_of_other_ends_has_is_refused(
    embedded_store: LadybugStore,
) -> None:
    """Pairs are found by a 63-bit hash of client and server: a stored CallPair with
    the same id but other ends must not take this pair's bounds; the batch is refused
    and rolled back."""
    a, b = "process:h/a", "process:h/b"
    other = ladybug.Connection(embedded_store._db)
    other.execute("CREATE (:CallPair {id: $id, client: 'x', server: 'y', last_seen: 1})",
                  {"id": q.pair_ids([(a, b)])[0]})
    other.close()
    with pytest.raises(StoreError, match="same 63-bit id"):
        embedded_store.apply(batch("clash", 0, [(a, b)], [a, b]), now=T0)
    assert embedded_store.stats()["batches"] == 0
    assert embedded_store.read(RELATIONSHIPS) == []
    assert [r["client"] for r in embedded_store.read(CALL_PAIRS)] == ["x"]


def test_created_pairs_are_remembered_and_skipped_ones_created_later(
    embedded_store: LadybugStore,
) -> None:
    """The pairs a write creates are remembered as written (the next write reads none
    of them back); a pair CREATE skipped (its server is no stored service) is not, so
    the write that stores that service creates it."""
    a, b, gone = "process:h/a", "process:h/b", "process:h/gone"
    first = batch("one", 0, [(a, b), (a, gone)], [a, b])
    embedded_store.apply(first, now=T0)
    naming = first.calls[0].naming
    assert embedded_store._known.pairs == {(a, b): (T0, T0 + 60, frozenset({"http"}), naming)}
    embedded_store.apply(batch("two", 1, [(a, gone)], [a, gone]), now=T0)
    assert [(r["client"], r["server"], r["last_seen"])
            for r in embedded_store.read(CALL_PAIRS)] == [(a, b, T0 + 60), (a, gone, T0 + 120)]
    assert [(r["client"], r["server"]) for r in embedded_store.read(RELATIONSHIPS)] == [
        (a, b), (a, gone)]
