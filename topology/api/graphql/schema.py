"""The Query type: each field checks the principal, parses its window, runs its answer
in a worker thread (the stores are synchronous) and turns known failures into coded
errors. The answers themselves live in answers_map.py and answers_graph.py."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import strawberry
from strawberry.types import Info
from strawberry.types.nodes import SelectedField

from queries.catalogue import BARE_TERM, CATALOGUE
from queries.compiler import compile_filter
from queries.errors import FilterError
from queries.services import UnknownService
from queries.traversal import Direction as QueryDirection
from topology.api.graphql import answers_graph, answers_map, windows
from topology.api.graphql import types as t
from topology.api.graphql.context import Ctx
from topology.api.graphql.errors import (
    BAD_FILTER,
    BAD_INPUT,
    FORBIDDEN,
    LIMIT_EXCEEDED,
    NOT_FOUND,
    UNAUTHENTICATED,
    ApiError,
)
from topology.api.graphql.scope import Scope
from topology.api.graphql.threads import in_thread
from topology.store.base import QueryTimeout, StoreUnavailable

T = TypeVar("T")
READ_SCOPES = frozenset({"read", "admin"})
MAX_SEARCH = 200
UNAVAILABLE = "UNAVAILABLE"


def _ctx(info: Info) -> Ctx:
    context = info.context
    principal = context.get("principal")
    if principal is None:
        raise ApiError(UNAUTHENTICATED, "a bearer token is needed")
    if not READ_SCOPES & frozenset(getattr(principal, "scopes", ())):
        raise ApiError(FORBIDDEN, "this token has no read scope")
    return Ctx(context["store"], context["settings"], Scope.of(principal), context["clock"])


def _translate(work: Callable[[], T]) -> T:
    try:
        return work()
    except FilterError as exc:
        raise ApiError(BAD_FILTER, exc.message, line=exc.line, column=exc.column,
                       filterCode=exc.code) from None
    except UnknownService as exc:
        raise ApiError(NOT_FOUND, str(exc)[:300]) from None
    except QueryTimeout:
        raise ApiError(LIMIT_EXCEEDED, "the query ran longer than the query timeout") from None
    except StoreUnavailable:
        raise ApiError(UNAVAILABLE, "the graph store is unavailable; try again") from None


async def _run(work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await in_thread(partial(_translate, partial(work, *args, **kwargs)))


def _window(ctx: Ctx, window: t.WindowInput | None) -> Any:
    return windows.resolve(window, ctx.clock, ctx.settings.hour_retention)


def requested(info: Info) -> set[str]:
    """Every field name selected below this field, fragments included."""
    names: set[str] = set()
    todo: list[Any] = list(info.selected_fields)
    while todo:
        selection = todo.pop()
        if isinstance(selection, SelectedField):
            names.add(selection.name)
        todo.extend(selection.selections)
    return names


@strawberry.type
class Query:
    @strawberry.field(description="Services and edges of the window whose calls match the "
                      "filter (the filter language, e.g. `server.namespace = shop`).")
    async def service_map(
        self, info: Info, window: t.WindowInput | None = None, filter: str = ""
    ) -> t.ServiceMap:
        ctx = _ctx(info)
        names = requested(info)
        return await _run(answers_map.service_map, ctx, _window(ctx, window), filter,
                          series="timeSeries" in names, exemplars="exemplarTraceIds" in names)

    @strawberry.field(description="One service with its incoming and outgoing edges.")
    async def service(
        self, info: Info, id: strawberry.ID, window: t.WindowInput | None = None
    ) -> t.ServiceDetail:
        ctx = _ctx(info)
        names = requested(info)
        return await _run(answers_map.service_detail, ctx, str(id), _window(ctx, window),
                          series="timeSeries" in names, exemplars="exemplarTraceIds" in names)

    @strawberry.field(description="The catalogue: services at either end of calls matching "
                      "the filter in the window, whose name contains `search`, by name.")
    async def services(
        self, info: Info, window: t.WindowInput | None = None, filter: str = "",
        search: str = "",
    ) -> t.ServiceList:
        ctx = _ctx(info)
        if len(search) > MAX_SEARCH:
            raise ApiError(BAD_INPUT, f"search is at most {MAX_SEARCH} characters")
        return await _run(answers_map.service_list, ctx, _window(ctx, window), filter, search)

    @strawberry.field(description="What a service calls (DOWNSTREAM) or what calls it "
                      "(UPSTREAM), transitively, up to `depth` hops.")
    async def dependencies(
        self, info: Info, service_id: strawberry.ID,
        direction: t.Direction = t.Direction.DOWNSTREAM, depth: int = 5,
        window: t.WindowInput | None = None,
    ) -> t.Dependencies:
        ctx = _ctx(info)
        return await _run(answers_graph.dependencies, ctx, str(service_id),
                          QueryDirection(direction.value), depth, _window(ctx, window))

    @strawberry.field(description="Every service that depends on this one, with distance, "
                      "path and degraded flag, and the totals.")
    async def blast_radius(
        self, info: Info, service_id: strawberry.ID, depth: int = 5,
        window: t.WindowInput | None = None,
    ) -> t.BlastRadius:
        ctx = _ctx(info)
        return await _run(answers_graph.blast_radius, ctx, str(service_id), depth,
                          _window(ctx, window))

    @strawberry.field(description="Stages in which services should come back, dependencies "
                      "first; dependency cycles share a stage. Without serviceIds: all.")
    async def recovery_order(
        self, info: Info, service_ids: list[strawberry.ID] | None = None,
        window: t.WindowInput | None = None,
    ) -> t.RecoveryOrder:
        ctx = _ctx(info)
        ids = None if service_ids is None else [str(i) for i in service_ids]
        return await _run(answers_graph.recovery_order, ctx, ids, _window(ctx, window))

    @strawberry.field(description="External services called in the window, how each was "
                      "named, its callers and traffic, busiest first.")
    async def external_dependencies(
        self, info: Info, window: t.WindowInput | None = None, filter: str = ""
    ) -> t.ExternalDependencies:
        ctx = _ctx(info)
        return await _run(answers_map.external_dependencies, ctx, _window(ctx, window), filter)

    @strawberry.field(description="What appeared, disappeared or changed (error rate moved by "
                      "5 points, p99 by 1.5x) between two windows.")
    async def topology_diff(
        self, info: Info, before: t.WindowInput, after: t.WindowInput, filter: str = ""
    ) -> t.TopologyDiff:
        ctx = _ctx(info)
        return await _run(answers_map.topology_diff, ctx, _window(ctx, before),
                          _window(ctx, after), filter)

    @strawberry.field(description="Check a filter: where and why it is wrong, for inline errors.")
    def validate_filter(self, info: Info, filter: str) -> t.FilterValidation:
        _ctx(info)
        try:
            compile_filter(filter)
        except FilterError as exc:
            return t.FilterValidation(valid=False, message=exc.message, line=exc.line,
                                      column=exc.column, code=exc.code)
        return t.FilterValidation(valid=True, message=None, line=None, column=None, code=None)

    @strawberry.field(description="The fields the filter language knows, for autocomplete.")
    def filter_fields(self, info: Info) -> list[t.FilterField]:
        _ctx(info)
        return [t.FilterField(name=f.name, type=f.type.value, description=f.description,
                              example=f.example) for f in (*CATALOGUE, BARE_TERM)]
