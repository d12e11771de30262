"""Lease and DNS stores: one set of tests for each backend (memory; real Redis through
redis-py, and through the build helper's own client)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from tests.topology.ingest.conftest import Clock
from topology.ingest.dns import DnsStore, MemoryDnsStore, RedisDnsStore
from topology.ingest.leases import Lease, LeaseStore, MemoryLeaseStore, RedisLeaseStore
from topology.ingest.redis_lite import Client

KEEP = 3600.0


def endpoint(ip: str, name: str, start: float, end: float | None = None,
             **extra: Any) -> Lease:
    data = {"ip": ip, "workload": {"namespace": "ns", "name": name, "kind": "Deployment"},
            "from": start, "to": end, **extra}
    return Lease.from_endpoint(data)


@pytest.fixture(params=["memory", "redis", "redis_lite"])
def stores(request: pytest.FixtureRequest) -> Iterator[tuple[Callable[[], LeaseStore],
                                                             Callable[[float], DnsStore],
                                                             Clock]]:
    clock = Clock(10_000.0)
    if request.param == "memory":
        yield (lambda: MemoryLeaseStore(KEEP, clock),
               lambda retention: MemoryDnsStore(retention, clock), clock)
        return
    url = request.getfixturevalue("redis_url")
    # redis_lite: the build helper's client (build_helper.py)
    client = redis.Redis.from_url(url) if request.param == "redis" else Client.from_url(url)
    yield (lambda: RedisLeaseStore(client, KEEP, clock),
           lambda retention: RedisDnsStore(client, retention), clock)
    client.close()


def _name(store: LeaseStore, ip: str, port: int | None, ts: float) -> str | None:
    lease = store.table([ip]).lookup(ip, port, ts)
    return None if lease is None else lease.workload["name"]


@pytest.mark.parametrize(("ip", "port", "ts", "owner"), [
    ("10.0.0.9", None, 8_500, "cart"),       # inside the first lease
    ("10.0.0.9", None, 9_000, "checkout"),   # the first lease's end is exclusive
    ("10.0.0.9", None, 7_000, None),         # before anyone had it
    ("10.0.0.9", 8080, 9_500, "checkout"),   # an IP lease covers every port
    ("10.0.0.5", 9100, 9_500, "exporter"),   # a port lease beats the IP lease
    ("10.0.0.5", 443, 9_500, "node"),
    ("10.0.0.5", None, 9_500, "node"),       # a source (no port) sees IP leases only
    ("10.0.0.7", None, 9_500, "new"),        # newest start wins when ends are unknown
    ("10.0.0.8", None, 9_500, None),         # closed by a later report of its end
])
def test_lease_lookup(stores: Any, ip: str, port: int | None, ts: float,
                      owner: str | None) -> None:
    store = stores[0]()
    store.add([endpoint("10.0.0.9", "cart", 8_000, 9_000), endpoint("10.0.0.9", "checkout", 9_000),
               endpoint("10.0.0.5", "node", 0), endpoint("10.0.0.5", "exporter", 0, port=9100),
               endpoint("10.0.0.7", "old", 1_000), endpoint("10.0.0.7", "new", 5_000),
               endpoint("10.0.0.8", "gone", 1_000)])
    store.add([endpoint("10.0.0.8", "gone", 1_000, 9_200), endpoint("10.0.0.8", "gone", 1_000)])
    assert _name(store, ip, port, ts) == owner


def test_ended_leases_are_forgotten_after_keep(stores: Any) -> None:
    make, _, clock = stores
    clock.now = 6_000
    store = make()
    store.add([endpoint("10.0.0.1", "a", 0, 5_000)])
    assert _name(store, "10.0.0.1", None, 4_000) == "a"
    clock.now = 5_000 + KEEP + 1
    store.add([endpoint("10.0.0.2", "b", 0)])
    store.add([endpoint("10.0.0.1", "c", 9_000)])  # touches the IP: prunes what ended
    assert _name(store, "10.0.0.1", None, 4_000) is None
    assert _name(store, "10.0.0.1", None, 9_500) == "c"


@pytest.mark.parametrize(("ip", "ts", "name"), [
    ("1.1.1.1", 1_000, "a.example.com"),     # just after the answer
    ("1.1.1.1", 997, "a.example.com"),       # a little before it: clock skew allowed
    ("1.1.1.1", 900, None),                  # long before
    ("1.1.1.1", 1_000 + 600, None),          # the retention (600 s) has passed
    ("2.2.2.2", 2_050, "new.example.com"),   # two names: the one seen last before the call
    ("2.2.2.2", 1_500, "old.example.com"),
    ("3.3.3.3", 1_000, None),
])
def test_dns_lookup_by_event_time(stores: Any, ip: str, ts: float, name: str | None) -> None:
    store = stores[1](600.0)
    store.record([{"name": "A.example.com.", "ips": ["1.1.1.1"], "timestamp": 1_000},
                  {"name": "old.example.com", "ips": ["2.2.2.2"], "timestamp": 1_400},
                  {"name": "new.example.com", "ips": ["2.2.2.2", "9.9.9.9"], "timestamp": 2_000}])
    assert store.table([ip]).lookup(ip, ts) == name


def test_dns_sightings_extend_across_batches(stores: Any) -> None:
    store = stores[1](600.0)
    store.record([{"name": "a.example.com", "ips": ["1.1.1.1"], "timestamp": 1_000}])
    store.record([{"name": "a.example.com", "ips": ["1.1.1.1"], "timestamp": 1_500}])
    assert store.table(["1.1.1.1"]).lookup("1.1.1.1", 2_000) == "a.example.com"
    assert store.table(["1.1.1.1"]).lookup("1.1.1.1", 1_010) == "a.example.com"


def test_memory_dns_forgets_after_retention_by_its_clock() -> None:
    clock = Clock(0.0)
    store = MemoryDnsStore(600.0, clock)
    store.record([{"name": "a.example.com", "ips": ["1.1.1.1"], "timestamp": 1_000}])
    clock.now = 599.0
    assert store.table(["1.1.1.1"]).lookup("1.1.1.1", 1_100) == "a.example.com"
    clock.now = 600.0
    assert store.table(["1.1.1.1"]).lookup("1.1.1.1", 1_100) is None


def test_redis_dns_keys_expire_after_retention(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    RedisDnsStore(client, 600.0).record(
        [{"name": "a.example.com", "ips": ["1.1.1.1"], "timestamp": 1_000}])
    assert 599_000 < client.pttl("topology:dns:1.1.1.1") <= 600_000
    client.close()


@pytest.fixture
def two_workers(redis_url: str) -> Iterator[tuple[redis.Redis, redis.Redis, Clock]]:
    """Two clients of one Redis, as two worker processes would have."""
    first, second = redis.Redis.from_url(redis_url), redis.Redis.from_url(redis_url)
    yield first, second, Clock(10_000.0)
    first.close()
    second.close()


def test_lease_written_by_another_worker_is_seen_by_the_next_read(two_workers: Any) -> None:
    one_client, other_client, clock = two_workers
    reader, writer = RedisLeaseStore(one_client, KEEP, clock), RedisLeaseStore(
        other_client, KEEP, clock)
    assert _name(reader, "10.9.0.1", None, 9_500) is None  # read (and kept) as "no lease"
    assert _name(reader, "10.9.0.1", None, 9_500) is None
    assert reader.cache.loads == 1  # the second read came from the copy
    writer.add([endpoint("10.9.0.1", "cart", 9_000)])
    assert _name(reader, "10.9.0.1", None, 9_500) == "cart"
    assert reader.cache.loads == 2


def test_dns_answer_recorded_by_another_worker_is_seen_by_the_next_read(
    two_workers: Any,
) -> None:
    one_client, other_client, clock = two_workers
    reader = RedisDnsStore(one_client, 600.0, clock)
    writer = RedisDnsStore(other_client, 600.0, clock)
    assert reader.table(["8.8.0.1"]).lookup("8.8.0.1", 1_000) is None
    writer.record([{"name": "api.example.com", "ips": ["8.8.0.1"], "timestamp": 1_000}])
    assert reader.table(["8.8.0.1"]).lookup("8.8.0.1", 1_000) == "api.example.com"
    assert reader.table(["8.8.0.1", "8.8.0.2"]).lookup("8.8.0.1", 1_000) == "api.example.com"
    assert reader.cache.loads == 3  # 8.8.0.1 twice (before and after the write), 8.8.0.2


def test_copy_is_dropped_after_max_age_so_redis_expiry_shows(two_workers: Any) -> None:
    one_client, _, clock = two_workers
    store = RedisDnsStore(one_client, 600.0, clock)
    store.record([{"name": "gone.example.com", "ips": ["8.8.1.1"], "timestamp": 1_000}])
    assert store.table(["8.8.1.1"]).lookup("8.8.1.1", 1_000) == "gone.example.com"
    one_client.delete("topology:dns:8.8.1.1")  # as Redis expiring the key would
    assert store.table(["8.8.1.1"]).lookup("8.8.1.1", 1_000) == "gone.example.com"
    clock.now += 5.0
    assert store.table(["8.8.1.1"]).lookup("8.8.1.1", 1_000) is None
