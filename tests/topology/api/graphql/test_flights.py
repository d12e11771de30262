"""Single flight: which concurrent requests share one execution, and what they get.

A first request is held inside its first store read (a gate around the real
store) while a second arrives; the second either joins it or runs its own.
Whichever happens, both answers equal the answer of the same request run
alone.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.topology.api.graphql import scenario as sc
from tests.topology.api.graphql.support import WINDOW_A, operations
from topology.api.auth import Principal
from topology.api.graphql import build_graphql_app
from topology.api.graphql.flights import SharedFlights
from topology.api.writes import WriteCounter
from topology.ingest.pipeline import Ingestor
from topology.settings import Settings
from topology.store.base import GraphStore, Reader, RetentionReport
from topology.store.statement import Statement

EVERYTHING = Principal("reader", frozenset({"read"}), None)
SHOP_ONLY = Principal("shop-ui", frozenset({"read"}), frozenset({"shop"}))
SAME_SCOPE = Principal("another-reader", frozenset({"read"}), None)


class Gate(GraphStore):
    """The real store; its first read or snapshot (where answers from the in-process
    caches begin) waits until the test opens the gate."""

    def __init__(self, inner: GraphStore) -> None:
        self.inner = inner
        self.dialect = inner.dialect
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.reads = 0

    def _first_waits(self) -> None:
        if not self.entered.is_set():
            self.entered.set()
            assert self.opened.wait(60), "the test never opened the gate"

    def read(self, statement: Statement,
             params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        self.reads += 1
        self._first_waits()
        return self.inner.read(statement, params)

    @contextmanager
    def snapshot(self) -> Iterator[Reader]:
        self._first_waits()
        yield self.read

    def apply_many(self, batches: Any, *, now: int | None = None) -> list[bool]:
        return self.inner.apply_many(batches, now=now)

    def init_schema(self) -> None:
        self.inner.init_schema()

    def stats(self) -> dict[str, int]:
        return self.inner.stats()

    def retention(self, now: int) -> RetentionReport:
        return self.inner.retention(now)

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()


class As:
    """Puts a principal on the request state, as the API's auth middleware does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        who = {"everything": EVERYTHING, "shop": SHOP_ONLY, "same-scope": SAME_SCOPE}
        name = dict(scope["headers"]).get(b"x-as", b"everything").decode()
        scope.setdefault("state", {})["principal"] = who[name]
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class Second:
    """How the second request differs from the first, and what must happen."""

    name: str
    shared: bool
    who: str = "everything"
    variables: dict[str, Any] | None = None  # of both requests; MAP when None
    other: dict[str, Any] | None = None  # of the second only
    later: int = 0  # seconds on the clock after the first
    write: bool = False  # a write runs between the two
    writes_known: bool = True
    accept: str = "application/json"


MAP = {"window": WINDOW_A}
CASES = [
    Second("identical", True),
    Second("another token with the same scopes", True, who="same-scope"),
    Second("another namespace scope", False, who="shop"),
    Second("another filter", False, other={**MAP, "filter": "client.namespace = shop"}),
    Second("absolute window, a second later", True, later=1),
    Second("relative window, a second later", False, variables={"window": {"last": "1h"}},
           later=1),
    Second("relative window, same second", True, variables={"window": {"last": "1h"}}),
    Second("a write in between", False, write=True),
    Second("writes not known to this process", False, writes_known=False),
    Second("another Accept header", False, accept="application/graphql-response+json"),
]


@pytest.fixture(scope="module")
def ingestor(golden: tuple[Settings, GraphStore]) -> Ingestor:
    settings, store = golden
    return Ingestor(store, settings, clock=lambda: float(sc.NOW))


def body(variables: dict[str, Any]) -> dict[str, Any]:
    return {"query": operations()["ServiceMap"], "operationName": "ServiceMap",
            "variables": variables}


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(100_000):  # event loop turns, not time
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def two_requests(case: Second, golden: tuple[Settings, GraphStore],
                       ingestor: Ingestor) -> tuple[SharedFlights, list[bytes], bytes]:
    settings, store = golden
    gate = Gate(store)
    now = [float(sc.NOW)]
    writes = WriteCounter()
    flights = build_graphql_app(settings, gate, clock=lambda: now[0],
                                writes=writes if case.writes_known else None)
    app = As(Starlette(routes=[Route("/graphql", flights, methods=["POST"])]))
    transport = httpx2.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx2.AsyncClient(transport=transport, base_url="http://api") as client:
        mine = case.variables or MAP
        theirs = case.other or mine
        first = asyncio.ensure_future(client.post("/graphql", json=body(mine),
                                                  headers={"accept": "application/json"}))
        assert await asyncio.to_thread(gate.entered.wait, 60)
        now[0] += case.later
        if case.write:
            with writes.writing():  # what the embedded sink does around each batch
                ingestor.ingest(sc.payloads()[1])  # a batch written before: changes nothing
        second = asyncio.ensure_future(client.post(
            "/graphql", json=body(theirs), headers={"x-as": case.who, "accept": case.accept}))
        await until(lambda: flights.executions + flights.joined >= 2)
        gate.opened.set()
        answers = [(await request).content for request in (first, second)]
        alone = (await client.post("/graphql", json=body(theirs),
                                   headers={"x-as": case.who, "accept": case.accept})).content
    return flights, answers, alone


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_second_request_joins_only_when_it_would_read_the_same(
        golden: tuple[Settings, GraphStore], ingestor: Ingestor, case: Second) -> None:
    flights, (first, second), alone = asyncio.run(two_requests(case, golden, ingestor))
    assert flights.shared == (1 if case.shared else 0)
    assert flights.executions == (2 if case.shared else 3)  # with the request run alone
    assert second == alone
    assert first.startswith(b'{"data":{"serviceMap"')
    if case.shared:
        assert first == second


def test_nothing_is_kept_after_an_execution(golden: tuple[Settings, GraphStore]) -> None:
    settings, store = golden
    flights = build_graphql_app(settings, store, clock=lambda: float(sc.NOW),
                                writes=WriteCounter())
    app = As(Starlette(routes=[Route("/graphql", flights, methods=["POST"])]))

    async def twice() -> list[bytes]:
        transport = httpx2.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx2.AsyncClient(transport=transport, base_url="http://api") as client:
            return [(await client.post("/graphql", json=body(MAP))).content for _ in range(2)]

    first, second = asyncio.run(twice())
    assert first == second
    assert (flights.executions, flights.shared, flights.flights) == (2, 0, {})


@pytest.fixture
def counter() -> Iterator[WriteCounter]:
    yield WriteCounter()


def test_generation_is_unknown_while_a_write_runs(counter: WriteCounter) -> None:
    before = counter.generation()
    with counter.writing():
        assert counter.generation() is None
    assert counter.generation() == (before or 0) + 1
