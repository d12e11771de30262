"""POST /v1/events through the real app, the real queue and the embedded store."""

from __future__ import annotations

import gzip
import json
import threading
from typing import Any

import pytest

from tests.topology.api.helpers import gzipped, serving
from tests.topology.ingest.delivery_helpers import batch, expected_totals, totals, wait_for
from topology.api.sinks import EmbeddedSink
from topology.ingest.pipeline import Ingestor
from topology.ingest.queue import IngestQueue
from topology.settings import Settings
from topology.store.base import GraphStore

LIMIT = 4096


def test_accepted_batches_are_written_once_drained(
    settings: Settings, embedded_store: GraphStore
) -> None:
    batches = [batch(f"b-{n}", 30) for n in range(5)]
    with serving(settings, embedded_store) as client:
        for payload in batches:
            answer = client.post("/v1/events", json=payload)
            assert answer.status_code == 202, answer.text
            assert answer.json() == {"accepted": True, "batch_id": payload["batch_id"],
                                     "calls": 30}
        again = client.post("/v1/events", json=batches[0])  # a sender's retry
        assert again.status_code == 202
    assert totals(embedded_store) == expected_totals(*batches)


def test_gzip_body_is_accepted(settings: Settings, embedded_store: GraphStore) -> None:
    payload = batch("zipped", 20)
    with serving(settings, embedded_store) as client:
        answer = client.post("/v1/events", content=gzipped(payload), headers={
            "Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert answer.status_code == 202, answer.text
    assert totals(embedded_store) == expected_totals(payload)


def _body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


BOMB = gzip.compress(b" " * (LIMIT * 50))

BAD_REQUESTS: list[tuple[str, bytes, dict[str, str], int, str, str]] = [
    ("not json", b"{\"batch_id\": ", {}, 400, "BAD_REQUEST", "not JSON"),
    ("not utf-8", b"{\"a\": \"\xc3\x28\"}", {}, 400, "BAD_REQUEST", "not UTF-8"),
    ("missing batch id", _body({"agent": "a"}), {}, 400, "INVALID_BATCH",
     "$: 'batch_id' is a required property"),
    ("wrong side", _body({"batch_id": "b", "agent": "a", "calls": [{
        "timestamp": 1, "side": "sideways", "source": {}, "destination": {},
        "protocol": "tcp"}]}), {}, 400, "INVALID_BATCH", "$.calls[0].side"),
    ("array", _body([1, 2]), {}, 400, "INVALID_BATCH", "a batch is a JSON object"),
    ("oversized", _body(batch("big", 60)), {}, 413, "TOO_LARGE", "exceeds the limit"),
    ("gzip bomb", BOMB, {"Content-Encoding": "gzip"}, 413, "TOO_LARGE",
     "decompressed body exceeds"),
    ("broken gzip", b"\x1f\x8b\x08garbage", {"Content-Encoding": "gzip"}, 400, "BAD_REQUEST",
     "not valid gzip"),
    ("truncated gzip", gzipped(batch("t", 2))[:-12], {"Content-Encoding": "gzip"}, 400,
     "BAD_REQUEST", "truncated"),
    ("brotli", _body(batch("br", 1)), {"Content-Encoding": "br"}, 415, "UNSUPPORTED",
     "'br' is not supported"),
    ("form", b"a=1", {"Content-Type": "application/x-www-form-urlencoded"}, 415,
     "UNSUPPORTED", "application/json"),
]


@pytest.mark.parametrize(("body", "headers", "status", "code", "says"),
                         [case[1:] for case in BAD_REQUESTS],
                         ids=[case[0] for case in BAD_REQUESTS])
def test_bad_requests_say_what_is_wrong(
    settings: Settings, embedded_store: GraphStore, body: bytes, headers: dict[str, str],
    status: int, code: str, says: str,
) -> None:
    with serving(settings.with_(max_body_bytes=LIMIT), embedded_store) as client:
        answer = client.post("/v1/events", content=body,
                             headers={"Content-Type": "application/json", **headers})
        assert answer.status_code == status, answer.text
        error = answer.json()["error"]
        assert error["code"] == code
        assert says in error["message"]
    assert totals(embedded_store) == (0, 0)


def test_full_queue_answers_429_with_retry_after_and_loses_nothing_accepted(
    settings: Settings, embedded_store: GraphStore
) -> None:
    ingestor = Ingestor(embedded_store, settings)
    gate = threading.Event()
    started = threading.Event()

    def gated(payload: Any) -> bool:
        started.set()
        gate.wait()
        return ingestor.ingest(payload)

    # Capacity 2: one batch held by the (gated) writer, one waiting, the third refused.
    sink = EmbeddedSink(embedded_store, settings, ingestor=ingestor,
                        queue=IngestQueue(gated, capacity=2))
    first, second, third = (batch(f"q-{n}", 10) for n in range(3))
    with serving(settings, embedded_store, ingest=sink) as client:
        assert client.post("/v1/events", json=first).status_code == 202
        wait_for(started.is_set, 10, "the writer to take the first batch")
        assert client.post("/v1/events", json=second).status_code == 202
        refused = client.post("/v1/events", json=third)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"]["code"] == "BACKPRESSURE"
        assert "queue full" in refused.json()["error"]["message"]
        gate.set()
    assert totals(embedded_store) == expected_totals(first, second)
