"""Service records held in the serving process stay exact: a write that changes
services shows in the next answer, and nothing else re-reads them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa
import pytest
from starlette.testclient import TestClient

from queries.service_cache import ALL_SERVICES
from tests.topology.api.graphql import scenario as sc
from tests.topology.api.graphql.support import ADMIN, TOKENS, WINDOW_A, WINDOW_B, data
from topology.api.app import create_app
from topology.api.graphql import records
from topology.ingest.pipeline import Ingestor
from topology.settings import Settings
from topology.store.proxy import StoreProxy
from topology.store.statement import Statement

AUDITOR_ID = sc.sid(sc.AUDITOR)


class Counting(StoreProxy):
    """The real store, counting the Arrow reads by statement name."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.reads: Counter[str] = Counter()

    def read_arrow(self, statement: Statement,
                   params: Mapping[str, Any] | None = None) -> pa.Table:
        self.reads[statement.name] += 1
        return super().read_arrow(statement, params)


@pytest.fixture
def served(tmp_path: Any) -> Iterator[tuple[TestClient, Counting, Ingestor]]:
    from topology.store.ladybug_store import LadybugStore

    settings = Settings.load({}, data_dir=str(tmp_path), tokens=TOKENS)
    store = LadybugStore(settings)
    store.init_schema()
    ingestor = sc.load(store, settings)
    counting = Counting(store)
    with TestClient(create_app(settings, counting)) as client:
        yield client, counting, ingestor
    store.close()


def relabelled_auditor_call() -> dict:
    """A batch from the auditor, now labelled team=audit, in window B."""
    auditor = sc._wl("auditor", "ops", team="audit")
    call = {"timestamp": sc.B[0] + 5, "side": "client", "protocol": "http", "method": "GET",
            "path": "/internal/audit", "status": 200, "duration_ms": 5.0,
            "source": {"ip": sc.IPS["auditor"], "workload": auditor},
            "destination": {"ip": sc.IPS["checkout"], "port": 8080,
                            "workload": sc.CHECKOUT}}
    return {"batch_id": "relabel", "agent": "node-1", "calls": [call],
            "endpoints": [{"ip": sc.IPS["auditor"], "workload": auditor, "from": sc.B[0]}]}


def auditor(client: TestClient, window: dict) -> dict:
    services = data(client, ADMIN, "ServiceMap", window=window)["serviceMap"]["services"]
    return next(s for s in services if s["id"] == AUDITOR_ID)


def test_a_write_changing_services_shows_in_the_next_answer(
        served: tuple[TestClient, Counting, Ingestor]) -> None:
    client, _, ingestor = served
    before = auditor(client, WINDOW_A)
    assert {"key": "team", "value": "sec"} in before["labels"]
    assert ingestor.ingest(relabelled_auditor_call())
    after = auditor(client, WINDOW_A)
    assert {"key": "team", "value": "audit"} in after["labels"]
    assert after["lastSeen"] > before["lastSeen"]
    assert after["firstSeen"] == before["firstSeen"]


def test_the_services_are_read_once_until_a_write_changes_them(
        served: tuple[TestClient, Counting, Ingestor]) -> None:
    client, store, ingestor = served
    full, by_id = ALL_SERVICES.name, records.SERVICES_FULL.name
    auditor(client, WINDOW_A)
    data(client, ADMIN, "ServiceMap", window=WINDOW_B)
    auditor(client, WINDOW_A)
    assert (store.reads[full], store.reads[by_id]) == (1, 0)
    assert ingestor.ingest(relabelled_auditor_call())
    # a stale copy: the few services a service page needs are read by id
    service = data(client, ADMIN, "Service", id=AUDITOR_ID, window=WINDOW_A)
    assert {"key": "team", "value": "audit"} in service["service"]["service"]["labels"]
    assert store.reads[full] == 1
    assert store.reads[by_id] > 0
