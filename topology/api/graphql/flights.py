"""Single flight: identical concurrent GraphQL requests share one execution.

A map of 20,000 edges costs a store query and a few hundred milliseconds of
Python under one GIL; eight map UIs asking for it at once used to queue eight
times that. An answer depends only on the request (operation, variables,
headers that shape the response), the caller's authorisation (scopes and
namespaces), the time the request's windows are read at and the data, so a
POST that arrives while an identical one (same body, same authorisation) is
being answered waits for that answer and gets the same bytes, when:

- the data it would read is what the running execution reads: that
  execution has not read the store yet, or the store's write generation
  (`topology.api.writes`) is known and no write started or finished since
  that execution began;
- the clock gives it the same windows: it arrived in the same second as
  the running execution (whose clock is fixed when it starts), or that
  execution never read the clock (only absolute windows); this is only known
  once it ends, and a request that cannot take the answer then runs its own.

Otherwise it runs its own execution, which later identical requests join.
Nothing outlives its execution: there is no response cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from topology.api.writes import WriteCounter
from topology.store.base import GraphStore, Reader, RetentionReport
from topology.store.proxy import StoreProxy
from topology.store.statement import Statement
from topology.store.tiers import TierRange

FLIGHT = "topology.flight"  # the ASGI scope key the GraphQL view finds its flight under
_SHAPING_HEADERS = (b"content-type", b"content-encoding", b"accept")


@dataclass(eq=False)
class Flight:
    """One execution that identical requests may join."""

    now: float  # the clock of every window of this execution
    generation: int | None  # the store's write generation when it began; None: unknown
    reading: bool = False  # it has begun reading the store
    clock_read: bool = False
    joined: int = 0
    task: asyncio.Future[list[Message]] | None = field(default=None, repr=False)

    def clock(self) -> float:
        self.clock_read = True
        return self.now


class FlightStore(StoreProxy):
    """The store as one flight reads it: notes that reading has begun."""

    def __init__(self, inner: GraphStore, flight: Flight) -> None:
        super().__init__(inner)
        self.flight = flight

    def read(self, statement: Statement,
             params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        self.flight.reading = True  # before the read: a joiner seeing False reads later data
        return self.inner.read(statement, params)

    def read_arrow(self, statement: Statement,
                   params: Mapping[str, Any] | None = None) -> pa.Table:
        self.flight.reading = True
        return self.inner.read_arrow(statement, params)

    def tier_range(self, read: Reader | None = None) -> TierRange | None:
        self.flight.reading = True
        return self.inner.tier_range(read)

    @contextmanager
    def snapshot(self) -> Iterator[Reader]:
        self.flight.reading = True
        with self.inner.snapshot() as read:
            yield read

    def apply_many(self, batches: Any, *, now: int | None = None) -> list[bool]:
        raise TypeError("GraphQL answers never write")

    def init_schema(self) -> None:
        raise TypeError("GraphQL answers never write")

    def retention(self, now: int) -> RetentionReport:
        raise TypeError("GraphQL answers never write")

    def close(self) -> None:
        """The flight does not own the store."""


class SharedFlights:
    """ASGI wrapper of the GraphQL app: POSTs share executions; anything else passes."""

    def __init__(self, app: ASGIApp, clock: Callable[[], float],
                 writes: WriteCounter | None) -> None:
        self.app = app
        self.clock = clock
        self.writes = writes  # None: this process does not see every write of the store
        self.flights: dict[tuple[Any, ...], Flight] = {}
        self.executions = 0  # executions run
        self.joined = 0  # requests that waited for another's execution
        self.shared = 0  # requests answered by another's execution

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await _body(receive)
        if body is None:  # the client left before sending the whole request
            return
        replay = _replay(body, receive)
        key = _key(scope, body)
        now = self.clock()
        flight = self.flights.get(key)
        if flight is not None and flight.task is not None and self._may_join(flight):
            flight.joined += 1
            self.joined += 1
            messages = await asyncio.shield(flight.task)
            if int(flight.now) == int(now) or not flight.clock_read:
                self.shared += 1
                for message in messages:
                    await send(dict(message))
                return
        flight = Flight(now, self.writes.generation() if self.writes is not None else None)
        self.flights[key] = flight
        flight.task = asyncio.ensure_future(self._fly(key, flight, scope, replay))
        for message in await asyncio.shield(flight.task):
            await send(dict(message))

    def _may_join(self, flight: Flight) -> bool:
        if not flight.reading:
            return True
        return (flight.generation is not None and self.writes is not None
                and self.writes.generation() == flight.generation)

    async def _fly(self, key: tuple[Any, ...], flight: Flight, scope: Scope,
                   receive: Receive) -> list[Message]:
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        self.executions += 1
        try:
            await self.app({**scope, FLIGHT: flight}, receive, capture)
        finally:
            if self.flights.get(key) is flight:
                del self.flights[key]
        return messages


def _key(scope: Scope, body: bytes) -> tuple[Any, ...]:
    """What the answer depends on besides the data and the clock."""
    principal = scope.get("state", {}).get("principal")
    who = (None if principal is None
           else (frozenset(principal.scopes), principal.namespaces))
    headers = tuple(sorted((k, v) for k, v in scope["headers"] if k in _SHAPING_HEADERS))
    return (scope["path"], scope.get("query_string", b""), who, headers, body)


async def _body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
