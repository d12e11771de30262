"""The pairing store: pure logic, time passed in, expiry explicit."""

from __future__ import annotations

import pytest

from topology.ingest.spanpairs import CLIENT, SERVER, PairStore


class Recorder:
    def __init__(self, ttl: float = 10, max_pending: int = 100) -> None:
        self.pairs: list[tuple[str, str]] = []
        self.alone: list[tuple[str, str]] = []
        self.store: PairStore[str] = PairStore(
            lambda c, s: self.pairs.append((c, s)),
            lambda span, side: self.alone.append((span, side)),
            ttl=ttl, max_pending=max_pending)


@pytest.mark.parametrize("server_first", [False, True])
def test_client_and_server_pair_in_either_order(server_first: bool) -> None:
    r = Recorder()
    steps = [lambda: r.store.add_client("t", "c1", "client", 0),
             lambda: r.store.add_server("t", "c1", "server", 1)]
    for step in reversed(steps) if server_first else steps:
        step()
    assert r.pairs == [("client", "server")]
    assert r.store.expire(100) == 0
    assert r.alone == []


def test_lone_spans_expire_at_their_deadline_not_before() -> None:
    r = Recorder(ttl=10)
    r.store.add_client("t", "c1", "client", 0)
    r.store.add_server("t", "other", "server", 5)
    assert r.store.expire(9.99) == 0
    assert r.store.expire(10) == 1
    assert r.alone == [("client", CLIENT)]
    assert r.store.expire(15) == 1
    assert r.alone == [("client", CLIENT), ("server", SERVER)]
    assert len(r.store) == 0


def test_resent_spans_are_not_counted_twice() -> None:
    r = Recorder()
    r.store.add_client("t", "c1", "client", 0)
    r.store.add_client("t", "c1", "client again", 0)
    r.store.add_server("t", "c1", "server", 1)
    r.store.add_server("t", "c1", "server again", 2)
    r.store.expire(100)
    assert (r.pairs, r.alone, r.store.stats.duplicates) == ([("client", "server")], [], 2)


def test_full_store_expires_the_oldest_early() -> None:
    r = Recorder(max_pending=2)
    for i in range(3):
        r.store.add_client("t", f"c{i}", f"client{i}", i)
    assert r.alone == [("client0", CLIENT)]
    assert (len(r.store), r.store.stats.evicted) == (2, 1)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="ttl"):
        Recorder(ttl=0)
