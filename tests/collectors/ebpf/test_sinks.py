"""Delivery to a real HTTP server, a real Redis broker (valkey) and a file."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from collectors.ebpf.sinks import CelerySink, HttpSink, JsonLinesSink, SinkError
from tests.collectors.ebpf.receiver import Receiver

BATCH = {"batch_id": "node-1:abc:1", "agent": "node-1",
         "dns": [{"name": "a.test", "ips": ["10.0.0.1"], "timestamp": 1.0}]}


def test_http_sink_posts_the_batch(receiver: Receiver) -> None:
    sink = HttpSink(f"http://127.0.0.1:{receiver.server_port}/")
    sink.send(BATCH)
    assert receiver.received == [("/v1/events", "application/json", BATCH)]
    assert receiver.authorizations == [None]


def test_http_sink_sends_the_token(receiver: Receiver) -> None:
    HttpSink(f"http://127.0.0.1:{receiver.server_port}", token="s3cr3t").send(BATCH)
    assert receiver.authorizations == ["Bearer s3cr3t"]


@pytest.mark.parametrize(("status", "permanent"), [(400, True), (413, True), (429, False),
                                                   (503, False)])
def test_http_sink_errors(receiver: Receiver, status: int, permanent: bool) -> None:
    receiver.status = status
    with pytest.raises(SinkError, match=f"HTTP {status}") as caught:
        HttpSink(f"http://127.0.0.1:{receiver.server_port}").send(BATCH)
    assert caught.value.permanent is permanent


def test_http_sink_unreachable_is_transient() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SinkError) as caught:
        HttpSink(f"http://127.0.0.1:{port}", timeout=2).send(BATCH)
    assert caught.value.permanent is False


def test_celery_sink_queues_the_ingest_task(redis_url: str) -> None:
    import redis

    from topology.ingest.celery_app import QUEUE, TASK_NAME

    sink = CelerySink(redis_url)
    try:
        sink.send(BATCH)
    finally:
        sink.close()
    client = redis.Redis.from_url(redis_url)
    (raw,) = client.lrange(QUEUE, 0, -1)
    message = json.loads(raw)
    assert message["headers"]["task"] == TASK_NAME
    assert message["headers"]["id"] == BATCH["batch_id"]
    args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert args == [BATCH]


def test_celery_sink_broker_down_is_transient() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = CelerySink(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(SinkError) as caught:
            sink.send(BATCH)
    finally:
        sink.close()
    assert caught.value.permanent is False


def test_json_lines_sink(tmp_path: Path) -> None:
    path = tmp_path / "batches.jsonl"
    sink = JsonLinesSink(str(path))
    sink.send(BATCH)
    sink.send(BATCH)
    sink.close()
    assert [json.loads(line) for line in path.read_text().splitlines()] == [BATCH, BATCH]
