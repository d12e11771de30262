"""Claim check: payloads stored in Redis by `publish`, decoded to what kombu's JSON gives."""

from __future__ import annotations

import base64
import datetime
import json
import uuid
from typing import Any

import pytest
import redis
from kombu.utils import json as kombu_json

from tests.topology.ingest.test_wirejson import BATCH
from topology.ingest import claims
from topology.ingest.celery_app import QUEUE, TASK_NAME, DeliveryOptions, create_app
from topology.ingest.schema import InvalidBatch
from topology.ingest.tasks import publish
from topology.settings import Settings, SettingsError


@pytest.mark.parametrize(
    "payload",
    [
        BATCH,
        {"batch_id": "b", "endpoints": [{"ip": "10.0.0.1", "from": 1.0, "to": None}]},
        {"batch_id": "b", "calls": [{"duration_ms": float("nan")}]},  # orjson would write null
        {"batch_id": "b", "calls": [{"duration_ms": float("inf")}]},
        {"batch_id": "b", "when": datetime.datetime(2026, 11, 22, 1, 2, 3)},  # kombu's tag
        {"batch_id": "b", "big": 2**64 - 1, "small": -(2**63), "tuple": (1, 2)},
    ],
)
def test_decodes_to_what_kombu_would_have_delivered(payload: Any) -> None:
    expected = kombu_json.loads(kombu_json.dumps(payload))
    got = claims.decode(claims.encode(payload))
    assert repr(got) == repr(expected)  # repr: NaN equals itself there


def test_a_uuid_travels_as_its_text() -> None:
    """The one value outside JSON where orjson differs from kombu (which tags it)."""
    payload = {"batch_id": uuid.UUID(int=7)}
    assert claims.decode(claims.encode(payload)) == {"batch_id": str(payload["batch_id"])}


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b""])
def test_a_stored_payload_that_is_not_json_is_an_invalid_batch(raw: bytes) -> None:
    with pytest.raises(InvalidBatch, match="stored payload is not JSON"):
        claims.decode(raw)


def test_put_stores_the_payload_under_the_task_id_with_its_expiry(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    key = claims.put(client, "task-1", BATCH, ttl=3600.0)
    assert key == claims.PAYLOAD_KEY + "task-1"
    assert 3590_000 < client.pttl(key) <= 3600_000
    raw = claims.fetch(client, key)
    assert raw is not None and claims.decode(raw) == BATCH
    client.delete(key)
    assert claims.fetch(client, key) is None


def test_publish_sends_only_the_key_and_stores_the_payload_once(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(QUEUE)
    app = create_app(Settings(redis_url=redis_url), DeliveryOptions(payload_ttl=86400.0))
    try:
        first, second = publish(app, BATCH), publish(app, BATCH)
    finally:
        app.close()
    assert first != second  # the same batch twice: two payloads, one per message
    for raw, task_id in zip(reversed(client.lrange(QUEUE, 0, -1)), (first, second),
                            strict=True):
        message = json.loads(raw)
        assert message["headers"]["id"] == task_id
        assert message["headers"]["task"] == TASK_NAME
        args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        assert (args, kwargs) == ([], {"claim": claims.PAYLOAD_KEY + task_id,
                                       "batch_id": "b-1"})
        assert json.loads(client.get(kwargs["claim"])) == BATCH
        assert 86390_000 < client.pttl(kwargs["claim"]) <= 86400_000
    client.delete(QUEUE, *(claims.PAYLOAD_KEY + t for t in (first, second)))


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, 7 * 86400.0),
        ({"TOPOLOGY_INGEST_PAYLOAD_TTL": "2d"}, 2 * 86400.0),
    ],
)
def test_payload_ttl_from_environment(environ: dict[str, str], expected: float) -> None:
    assert DeliveryOptions.load(environ).payload_ttl == expected


def test_payload_ttl_must_outlive_redelivery_and_retries() -> None:
    # visibility 3600 s + retries 2+4+...+256 s = 4110 s
    with pytest.raises(SettingsError, match=r"TOPOLOGY_INGEST_PAYLOAD_TTL=4000s.*\(4110s\)"):
        DeliveryOptions.load({"TOPOLOGY_INGEST_PAYLOAD_TTL": "4000s"})
