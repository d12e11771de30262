"""The GraphQL API: a Strawberry ASGI app over the named graph queries.

`build_graphql_app(settings, store)` is mounted at /graphql by the Starlette
app; the auth middleware puts the caller's Principal on `request.state`.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

import orjson
import strawberry
from strawberry.asgi import GraphQL
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from topology.api.graphql.errors import limit_error, mask
from topology.api.graphql.executor import JSON_FRAGMENTS, LeanExecutionContext
from topology.api.graphql.flights import FLIGHT, FlightStore, SharedFlights
from topology.api.graphql.limits import Limits, rule
from topology.api.graphql.schema import Query
from topology.api.writes import WriteCounter
from topology.settings import Settings
from topology.store.base import GraphStore

__all__ = ["build_graphql_app", "build_schema"]
DOCUMENT_CACHE = 256


def build_schema(settings: Settings) -> strawberry.Schema:
    limits = rule(Limits(settings.graphql_max_depth, settings.graphql_max_aliases,
                         settings.graphql_max_complexity))
    # factories: Strawberry builds fresh extension instances for every request
    extensions: list[Any] = [
        lambda: MaxTokensLimiter(settings.graphql_max_tokens),
        # parse and validate a document text once (LRU): the map UI sends the same few
        # operations over and over; the token limit is part of the parse cache's key
        lambda: ParserCache(maxsize=DOCUMENT_CACHE),
        lambda: AddValidationRules([limits]),
        lambda: ValidationCache(maxsize=DOCUMENT_CACHE),
    ]
    if not settings.graphql_introspection:
        extensions.append(DisableIntrospection)
    return strawberry.Schema(query=Query, extensions=extensions,
                             execution_context_class=LeanExecutionContext)


class TopologyGraphQL(GraphQL):
    """Strawberry's ASGI app with our context, a request timeout and masked errors."""

    def __init__(self, settings: Settings, store: GraphStore,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(
            build_schema(settings), graphql_ide="graphiql" if settings.graphiql else None,
            allow_queries_via_get=True, subscription_protocols=(),
            multipart_uploads_enabled=False,
        )
        self.settings = settings
        self.store = store
        self.clock = clock

    async def get_context(self, request: Any, response: Any) -> dict[str, Any]:
        state = getattr(request, "state", None)
        flight = request.scope.get(FLIGHT)
        return {
            "request": request, "response": response,
            "principal": getattr(state, "principal", None) if state is not None else None,
            "store": self.store if flight is None else FlightStore(self.store, flight),
            "settings": self.settings,
            "clock": self.clock if flight is None else flight.clock,
            JSON_FRAGMENTS: True,  # encode_json is orjson, which embeds the fragments
        }

    async def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        timeout = self.settings.graphql_timeout
        try:
            return await asyncio.wait_for(super().execute_operation(*args, **kwargs), timeout)
        except TimeoutError:
            return ExecutionResult(data=None, errors=[
                limit_error(f"the request ran longer than {timeout:g}s")])

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        response: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            response["errors"] = [mask(error).formatted for error in result.errors]
        return response


GC_THRESHOLD = (1_000_000, 50, 100)


def tune_gc() -> None:
    """Collect young objects less often (never more often than configured).

    A large map builds a few hundred thousand objects that all stay alive until
    the response is sent; each young-generation collection meanwhile walks all
    of them only to promote them. The count that triggers one is containers
    allocated minus those freed, so with a threshold above what one answer
    holds, collections come after responses, when reference counting has
    already freed the answers and there is little left to walk. Measured with
    bench/api.py: CPython's default of 700 about doubled serviceMap latency at
    1,000 / 10,000; 100,000 still cost about a tenth of a 2,000 / 20,000 map.
    Cyclic garbage (rare on this path) waits longer; nothing else changes.
    """
    current = gc.get_threshold()
    gc.set_threshold(*(max(a, b) for a, b in zip(current, GC_THRESHOLD, strict=True)))


def build_graphql_app(settings: Settings, store: GraphStore,
                      clock: Callable[[], float] = time.time,
                      writes: WriteCounter | None = None) -> SharedFlights:
    """The /graphql endpoint. `writes`: the store's write counter, when every write
    of the store goes through this process (identical requests then share more)."""
    tune_gc()
    return SharedFlights(TopologyGraphQL(settings, store, clock), clock, writes)
