"""Bad batches are refused with the JSON path and the reason; good ones pass."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from topology.ingest.schema import InvalidBatch, validate

GOOD: dict[str, Any] = {
    "batch_id": "b1", "agent": "node-1",
    "calls": [{"timestamp": 1.5, "side": "client",
               "source": {"ip": "10.0.0.1", "port": 4000,
                          "workload": {"name": "web", "kind": "Deployment",
                                       "labels": {"team": "shop"}}},
               "destination": {"ip": "10.0.0.2", "port": 80}, "protocol": "http",
               "method": "GET", "path": "/", "status": 200, "error": False,
               "duration_ms": 1, "trace_id": "ab"}],
    "dns": [{"name": "a.example.com", "ips": ["1.2.3.4"], "ttl": 30, "timestamp": 1}],
    "endpoints": [{"ip": "10.0.0.2", "workload": {"name": "api", "kind": "Deployment"},
                   "from": 0, "to": None, "watched": True}],
}


def test_good_batch_passes() -> None:
    validate(copy.deepcopy(GOOD))


def _set(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    payload = copy.deepcopy(GOOD)
    node: Any = payload
    for step in path[:-1]:
        node = node[step]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return payload


_DELETE = object()


@pytest.mark.parametrize(("path", "value", "where", "why"), [
    (("batch_id",), _DELETE, "$", "'batch_id' is a required property"),
    (("batch_id",), "", "$.batch_id", "should be non-empty"),
    (("extra",), 1, "$", "Additional properties"),
    (("calls", 0, "side"), "sideways", "$.calls[0].side", "is not one of"),
    (("calls", 0, "timestamp"), "now", "$.calls[0].timestamp", "is not of type 'number'"),
    (("calls", 0, "timestamp"), -1, "$.calls[0].timestamp", "less than the minimum"),
    (("calls", 0, "status"), 1000, "$.calls[0].status", "greater than the maximum"),
    (("calls", 0, "source", "port"), 70000, "$.calls[0].source.port", "maximum"),
    (("calls", 0, "source", "workload", "kind"), "Pod", "$.calls[0].source.workload.kind",
     "is not one of"),
    (("calls", 0, "source", "workload", "labels", "team"), 3,
     "$.calls[0].source.workload.labels.team", "is not of type 'string'"),
    (("calls", 0, "error"), "yes", "$.calls[0].error", "is not of type 'boolean'"),
    (("dns", 0, "ips"), "1.2.3.4", "$.dns[0].ips", "is not of type 'array'"),
    (("endpoints", 0, "from"), _DELETE, "$.endpoints[0]", "'from' is a required property"),
    (("endpoints", 0, "to"), "later", "$.endpoints[0].to", "is not of type"),
])
def test_bad_batches_name_path_and_reason(
    path: tuple[Any, ...], value: Any, where: str, why: str
) -> None:
    with pytest.raises(InvalidBatch) as caught:
        validate(_set(path, value))
    message = str(caught.value)
    assert message.startswith(where + ": "), message
    assert why in message


def test_not_an_object() -> None:
    with pytest.raises(InvalidBatch, match=r"^\$: a batch is a JSON object"):
        validate([1, 2])
