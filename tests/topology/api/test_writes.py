"""The serving process counts its writes on the store's counter (what lets identical
GraphQL requests share an execution that already read the store)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.topology.ingest.delivery_helpers import T0, batch
from topology.api.app import create_app
from topology.api.graphql.flights import SharedFlights
from topology.api.retention import RetentionJob
from topology.api.sinks import EmbeddedSink
from topology.api.writes import counter_for
from topology.ingest.pipeline import Ingestor
from topology.ingest.queue import IngestQueue
from topology.settings import Settings
from topology.store.base import GraphStore


def _flights(app: object) -> SharedFlights:
    route = next(r for r in app.routes if isinstance(r, Route) and r.path == "/graphql")
    assert isinstance(route.app, SharedFlights)
    return route.app


def _ingest(settings: Settings, store: GraphStore) -> None:
    app = create_app(settings, store)
    with TestClient(app) as client:
        assert client.post("/v1/events", json=batch("counted", 10)).status_code == 202
        app.state.ingest.queue.close()  # written


def _retention(settings: Settings, store: GraphStore) -> None:
    assert RetentionJob(store, interval=3600, clock=lambda: float(T0)).run_once() is not None


WRITERS: list[Callable[[Settings, GraphStore], None]] = [_ingest, _retention]


@pytest.mark.parametrize("write", WRITERS, ids=["ingest queue", "retention job"])
def test_each_write_of_the_process_is_counted(
        settings: Settings, embedded_store: GraphStore,
        write: Callable[[Settings, GraphStore], None]) -> None:
    before = counter_for(embedded_store).generation()
    write(settings, embedded_store)
    assert counter_for(embedded_store).generation() == (before or 0) + 1


def test_the_app_trusts_the_counter_only_with_its_own_embedded_writer(
        settings: Settings, embedded_store: GraphStore) -> None:
    assert _flights(create_app(settings, embedded_store)).writes is counter_for(embedded_store)
    # a sink made elsewhere may write around the counter: the app does not rely on it
    ingestor = Ingestor(embedded_store, settings)
    sink = EmbeddedSink(embedded_store, settings, ingestor=ingestor,
                        queue=IngestQueue(ingestor.ingest, 4))
    try:
        assert _flights(create_app(settings, embedded_store, ingest=sink)).writes is None
    finally:
        sink.close()
