"""The worker's JSON decoder gives exactly what kombu's own would, faster."""

from __future__ import annotations

import datetime
import decimal
import gc
import uuid
from typing import Any

import pytest
from kombu.serialization import dumps as kombu_dumps
from kombu.serialization import loads as kombu_loads
from kombu.utils import json as kombu_json

from topology.ingest import gctune, wirejson
from topology.ingest.celery_app import create_app
from topology.settings import Settings

BATCH = {"batch_id": "b-1", "agent": "a", "calls": [
    {"timestamp": 1.5, "side": "client", "source": {"ip": "10.0.0.1"},
     "destination": {"ip": "10.0.0.2", "port": 80}, "protocol": "http",
     "path": "/caf\u00e9/\U0001f600", "status": 503, "duration_ms": 0.25}]}


@pytest.mark.parametrize(
    "value",
    [
        [[BATCH], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}],
        {"nested": [1, 2.5, -3, None, True, False, "", {"k": []}]},
        {"when": datetime.datetime(2026, 11, 22, 1, 2, 3)},  # kombu's tagged values
        {"amount": decimal.Decimal("1.25"), "id": uuid.UUID(int=7)},
        {"__type__": "not a tag", "x": 1},  # looks like a tag, is not one
        {"duration_ms": float("nan")},  # Python's json writes NaN; orjson refuses it
        {"big": 2**70},
    ],
)
@pytest.mark.parametrize("kind", [str, bytes, bytearray, memoryview])
def test_decodes_what_kombu_decodes(value: Any, kind: type) -> None:
    text = kombu_json.dumps(value)
    data = text if kind is str else kind(text.encode())
    expected = kombu_json.loads(text)
    got = wirejson.loads(data)
    if value == {"duration_ms": float("nan")}:
        assert got.keys() == expected.keys() and got["duration_ms"] != got["duration_ms"]
    else:
        assert got == expected
        assert type(got) is type(expected)


def test_broken_json_fails_as_kombu_says() -> None:
    with pytest.raises(ValueError) as ours:
        wirejson.loads('{"calls": [')
    with pytest.raises(ValueError) as theirs:
        kombu_json.loads('{"calls": [')
    assert str(ours.value) == str(theirs.value)


def test_the_celery_app_decodes_json_messages_with_it() -> None:
    create_app(Settings(redis_url="redis://localhost:1/0")).close()
    body = kombu_dumps([[BATCH], {}, {}], serializer="json")
    content_type, encoding, data = body
    assert kombu_loads(data, content_type, encoding) == [[BATCH], {}, {}]
    from kombu.serialization import registry

    assert registry._decoders["application/json"] is wirejson.loads


def test_gc_tuning_freezes_startup_objects_and_collects_rarely() -> None:
    saved = gc.get_threshold()
    try:
        gctune.tune()
        assert gc.get_threshold() == (gctune.YOUNG, gctune.MIDDLE, gctune.OLD)
        assert gc.get_freeze_count() > 0
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)
