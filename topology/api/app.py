"""The Starlette application: routes, the auth/metrics middleware, lifespan.

`create_app(settings, store, ingest=...)` wires everything from explicit
arguments: the store to read (opened from the settings when not given, and
then closed by the app), and the ingest sink (the in-process queue, or the
Celery broker in distributed mode, when not given). Shutdown stops accepting,
writes every batch already accepted (up to settings.drain_timeout), then
closes what the app opened. app.state holds settings, store, ingest, metrics
and, when the OTLP receiver exists, otlp.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from topology.api.auth import token_table
from topology.api.health import healthz, metrics, readyz
from topology.api.ingest_routes import post_events, post_traces
from topology.api.metrics import ApiMetrics
from topology.api.middleware import ApiMiddleware
from topology.api.otlp_intake import OtlpIntake
from topology.api.sinks import EmbeddedSink, IngestSink, open_sink
from topology.api.writes import WriteCounter
from topology.settings import Settings
from topology.store import open_store
from topology.store.base import GraphStore
from topology.store.statement import Dialect

log = logging.getLogger(__name__)


def _graphql_route(settings: Settings, store: GraphStore,
                   writes: WriteCounter | None) -> BaseRoute | None:
    """POST /graphql (and GraphiQL on GET) from the GraphQL package, when it is there."""
    try:
        from topology.api.graphql import build_graphql_app
    except ImportError:
        log.warning("topology.api.graphql is missing: no /graphql endpoint")
        return None
    return Route("/graphql", build_graphql_app(settings, store, writes=writes),
                 methods=["GET", "POST"])


def create_app(
    settings: Settings, store: GraphStore | None = None, *, ingest: IngestSink | None = None
) -> Starlette:
    token_table(settings)  # a malformed token file fails here, naming the setting
    owned: list[Any] = []
    if store is None:
        store = open_store(settings)
        store.init_schema()
        owned.append(store)
    api_metrics = ApiMetrics()
    writes: WriteCounter | None = None
    if ingest is None:
        ingest = open_sink(store, settings, api_metrics)
        if isinstance(ingest, EmbeddedSink) and store.dialect is Dialect.LADYBUG:
            # the embedded file has one writer, this process: its sink and retention
            # job count every write (what lets identical GraphQL requests share more)
            writes = ingest.writes
    otlp = OtlpIntake(ingest, api_metrics)

    routes: list[BaseRoute] = [
        Route("/v1/events", post_events, methods=["POST"]),
        Route("/v1/traces", post_traces, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    graphql = _graphql_route(settings, store, writes)
    if graphql is not None:
        routes.append(graphql)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info("topology API up", extra={"store": settings.store})
        try:
            yield
        finally:
            await asyncio.to_thread(_shutdown, app, owned)

    app = Starlette(
        routes=routes,
        middleware=[Middleware(ApiMiddleware, settings=settings, metrics=api_metrics)],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.ingest = ingest
    app.state.metrics = api_metrics
    app.state.otlp = otlp
    app.state.stopping = False
    return app


def _shutdown(app: Starlette, owned: list[Any]) -> None:
    """Stop accepting, write what was accepted, close what the app opened."""
    state = app.state
    state.stopping = True
    try:
        state.otlp.close(state.settings.drain_timeout)
        left = state.ingest.close(state.settings.drain_timeout)
        if left:
            log.error("shutdown: %d accepted batch(es) could not be written in %gs",
                      left, state.settings.drain_timeout)
        else:
            log.info("shutdown: every accepted batch written")
    finally:
        for resource in owned:
            resource.close()
