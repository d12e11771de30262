"""First checks of the ingest entry point on the Batch it builds (no store needed)."""

from __future__ import annotations

import pytest

from topology.ingest.pipeline import Ingestor, InvalidBatch
from topology.settings import Settings

WEB = {"namespace": "shop", "name": "web", "kind": "Deployment"}
API = {"namespace": "shop", "name": "api", "kind": "Deployment"}


def _ingestor() -> Ingestor:
    return Ingestor(store=None, settings=Settings(), clock=lambda: 1000.0)  # type: ignore[arg-type]


def test_internal_call_resolved_by_lease_and_path_folded() -> None:
    batch = _ingestor().build({
        "batch_id": "b1", "agent": "node-1",
        "endpoints": [{"ip": "10.0.0.2", "workload": API, "from": 0}],
        "calls": [{
            "timestamp": 1000.5, "side": "client",
            "source": {"ip": "10.0.0.1", "workload": WEB},
            "destination": {"ip": "10.0.0.2", "port": 80},
            "protocol": "http", "method": "GET", "path": "/orders/123?x=1",
            "status": 503, "duration_ms": 12,
        }],
    })
    [row] = batch.calls
    assert (row.client, row.server, row.path, row.requests, row.errors) == (
        "k8s:/shop/Deployment/web", "k8s:/shop/Deployment/api", "/orders/{id}", 1, 1)
    assert {s.id for s in batch.services} == {row.client, row.server}


@pytest.mark.parametrize(("payload", "where"), [
    ({"agent": "a"}, "$"),
    ({"batch_id": "b", "agent": "a", "calls": [{"timestamp": 1}]}, "$.calls[0]"),
    ({"batch_id": "b", "agent": "a", "calls": [{
        "timestamp": 1, "side": "sideways", "source": {}, "destination": {},
        "protocol": "tcp"}]}, "$.calls[0].side"),
])
def test_invalid_batch_names_the_path(payload: dict, where: str) -> None:
    with pytest.raises(InvalidBatch) as caught:
        _ingestor().build(payload)
    assert str(caught.value).startswith(where + ":")
