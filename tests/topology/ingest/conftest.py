"""Fixtures of the ingest tests: an Ingestor over the real embedded store, with
leases, DNS answers and template caps in real Redis or in memory."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from topology.ingest.pipeline import Ingestor
from topology.settings import Settings
from topology.store.base import GraphStore
from topology.store.statement import Statement

T = 1_763_700_000.0  # a minute boundary

BUCKETS = Statement.same(
    "test_buckets",
    "MATCH (b:CallBucket) RETURN b.client AS client, b.server AS server, b.method AS method, "
    "b.path AS path, b.requests AS requests, b.errors AS errors, b.naming AS naming, "
    "b.protocol AS protocol",
)
SERVICES = Statement.same(
    "test_services", "MATCH (s:Service) RETURN s.id AS id, s.kind AS kind, s.name AS name")


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T + 120)


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[redis.Redis | None]:
    """Where leases, DNS answers and templates live: this process, or a real Redis."""
    if request.param == "memory":
        yield None
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    yield client
    client.close()


@pytest.fixture
def make_ingestor(
    embedded_store: GraphStore, settings: Settings, backend: redis.Redis | None, clock: Clock
) -> Callable[..., Ingestor]:
    def make(**kwargs: Any) -> Ingestor:
        return Ingestor(embedded_store, settings, backend, clock, **kwargs)

    return make


def edges(store: GraphStore) -> Counter[tuple[str, str, str, str, str]]:
    """Requests per (client, server, method, path, naming), summed over buckets."""
    out: Counter[tuple[str, str, str, str, str]] = Counter()
    for row in store.read(BUCKETS):
        out[(row["client"], row["server"], row["method"], row["path"], row["naming"])] += (
            row["requests"])
    return out


def errors(store: GraphStore) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for row in store.read(BUCKETS):
        out[(row["client"], row["server"])] += row["errors"]
    return +out


def services(store: GraphStore) -> dict[str, str]:
    return {row["id"]: row["kind"] for row in store.read(SERVICES)}
