"""Bad batches are refused with the JSON path and the reason; good ones pass."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from topology.ingest import records
from topology.ingest.schema import InvalidBatch, decode, schema, validate

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
    batch = validate(copy.deepcopy(GOOD))
    assert (batch.batch_id, len(batch.calls), batch.calls[0].source.workload.labels) == (
        "b1", 1, {"team": "shop"})
    assert decode(orjson.dumps(GOOD)) == batch  # bytes and dicts give the same records


def _set(path: tuple[Any, ...], value: Any, base: dict[str, Any] = GOOD) -> dict[str, Any]:
    payload = copy.deepcopy(base)
    node: Any = payload
    for step in path[:-1]:
        node = node[step]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return payload


_DELETE = object()


@pytest.mark.parametrize(("path", "value", "read", "expected"), [
    # JSON Schema allows an integer written as a float; the records take it as an int
    (("calls", 0, "status"), 200.0, lambda b: b.calls[0].status, 200),
    (("calls", 0, "source", "port"), 4000.0, lambda b: b.calls[0].source.port, 4000),
    # absent optional fields read as the defaults the ingest code relies on
    (("calls", 0, "method"), _DELETE, lambda b: b.calls[0].method, ""),
])
def test_what_the_schema_allows_the_records_take(
    path: tuple[Any, ...], value: Any, read: Any, expected: Any
) -> None:
    payload = _set(path, value)
    assert read(validate(payload)) == expected
    assert read(decode(orjson.dumps(payload))) == expected


def test_a_number_beyond_64_bits_is_taken_as_the_schema_allows() -> None:
    payload = _set(("calls", 0, "bytes_sent"), 2**70)
    assert validate(payload).calls[0].bytes_sent == 2**70
    assert decode(json.dumps(payload).encode()).calls[0].bytes_sent == 2**70


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


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 70_000) | st.floats(-1, 1e10)
    | st.sampled_from(["", "client", "server", "Deployment", "x" * 300, "10.0.0.1"]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["name", "kind", "ip", "port", "extra"]), children,
                      max_size=3),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_validation_agrees_with_jsonschema(data: st.DataObject) -> None:
    """Random damage anywhere in a good batch: the records accept only what
    jsonschema accepts, and validation (records, then jsonschema) refuses
    exactly what jsonschema refuses, from dicts and from bytes alike."""
    payload = copy.deepcopy(GOOD)
    for _ in range(data.draw(st.integers(1, 2))):
        path = data.draw(st.sampled_from(_paths(payload)))
        payload = _set(path, data.draw(st.just(_DELETE) | _JSON), payload)
    expected = Draft202012Validator(schema()).is_valid(payload)
    try:
        records.convert(payload)
    except msgspec.ValidationError:
        pass
    else:
        assert expected, "the records accepted a batch the schema refuses"
    for parse in (validate, lambda p: decode(orjson.dumps(p))):
        try:
            parse(payload)
        except InvalidBatch:
            assert not expected
        else:
            assert expected


def _record_types() -> dict[str, type[msgspec.Struct]]:
    return {"workload": records.Workload, "peer": records.Peer, "call": records.Call,
            "dns": records.DnsAnswer, "endpoint": records.Endpoint}


@pytest.mark.parametrize("name", [*sorted(_record_types()), "$root"])
def test_records_mirror_the_schema(name: str) -> None:
    """Every object of the schema has a record with the same fields, required the same."""
    definition = schema() if name == "$root" else schema()["$defs"][name]
    record = records.Batch if name == "$root" else _record_types()[name]
    fields = msgspec.structs.fields(record)
    assert {f.encode_name for f in fields} == set(definition["properties"])
    assert {f.encode_name for f in fields if f.required} == set(definition.get("required", []))
    assert definition["additionalProperties"] is False
    assert record.__struct_config__.forbid_unknown_fields


# In a fresh process (the worker and its build helper): valid batches never
# load jsonschema (about 8 MB of RSS each); the first invalid one does, for
# its message.
FRESH = """
import json, sys
from topology.ingest import offload
from topology.ingest.schema import InvalidBatch, validate

validate(json.loads(sys.argv[1]))
loaded = "jsonschema" in sys.modules
try:
    validate({"batch_id": "b", "agent": "a", "calls": [{"side": "sideways"}]})
except InvalidBatch as exc:
    message = str(exc)
print(json.dumps({"after_valid": loaded, "after_invalid": "jsonschema" in sys.modules,
                  "message": message}))
"""


def test_valid_batches_do_not_load_jsonschema_invalid_ones_do() -> None:
    out = subprocess.run([sys.executable, "-c", FRESH, json.dumps(GOOD)], capture_output=True,
                         text=True, check=True, timeout=60)
    found = json.loads(out.stdout)
    assert (found["after_valid"], found["after_invalid"]) == (False, True)
    assert found["message"].startswith("$.calls[0]"), found
