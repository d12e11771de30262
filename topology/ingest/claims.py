"""Claim check: a batch's payload waits in Redis under its own key; Celery carries the key.

Kombu's Redis transport base64-encodes a message body into a JSON envelope,
pushes that envelope to the queue and, once a worker takes it, writes it
again into its hash of unacknowledged messages: a batch of 5,000 calls
(about 1.7 MB of JSON) crossed Redis three times at 2.3 MB, and both ends
paid JSON envelopes and base64 for it. `publish` instead stores
the payload's JSON bytes once (`put`, one SET with an expiry) and sends
only the key; the task reads it (`fetch`) and deletes it (`forget`) only
once the batch has a final verdict: applied, found applied before, or kept
in the dead letters (which hold the payload itself). So every delivery
guarantee stays with the message: a retry or a redelivery finds the
payload where it was; a redelivery after the key was deleted (the worker
died between the verdict and the acknowledgement) finds no payload and
has nothing left to do.

The key is the task id (new for every publish, kept by retries and
redeliveries), so publishing the same batch twice keeps two payloads and
neither delivery can delete the other's. The expiry (`DeliveryOptions.
payload_ttl`, a week by default) only bounds what a message lost outside
our control (a purged queue) leaves behind; it must outlive any backlog.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
import redis
from kombu.utils import json as kombu_json

from topology.ingest.schema import InvalidBatch, stored_json

if TYPE_CHECKING:
    from celery import Celery

PAYLOAD_KEY = "topology:ingest:payload:"

# orjson writes NaN and Infinity as null, and kombu's JSON keeps them; a payload
# whose orjson text names null anywhere is encoded by kombu instead (exact, slower).
_NULL = b"null"
# Types orjson would write as plain strings where kombu writes tagged values
# (all but UUIDs, which orjson writes as their text: no JSON batch holds one).
_PASSTHROUGH = (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
                | orjson.OPT_PASSTHROUGH_SUBCLASS)


def key_for(task_id: str) -> str:
    return PAYLOAD_KEY + task_id


def encode(payload: Any) -> bytes:
    """The payload as JSON that decodes (`decode`) to what kombu's JSON would give."""
    try:
        raw = orjson.dumps(payload, option=_PASSTHROUGH)
    except TypeError:  # a value orjson does not write (kombu tags it, or refuses it)
        raw = None
    if raw is None or _NULL in raw:
        return kombu_json.dumps(payload).encode("utf-8")
    return raw


def decode(raw: bytes) -> Any:
    """A stored payload back to objects; InvalidBatch when it is not JSON."""
    return stored_json(raw)


def put(client: redis.Redis, task_id: str, payload: Any, ttl: float) -> str:
    """Store the payload of task `task_id`; returns its key."""
    key = key_for(task_id)
    client.set(key, encode(payload), px=int(ttl * 1000))
    return key


def fetch(client: redis.Redis, key: str) -> bytes | None:
    """The stored payload, or None when it is gone (deleted after its verdict, or expired)."""
    raw = client.get(key)
    return None if raw is None else bytes(raw)


def stored(client: redis.Redis, key: str) -> bool:
    """Whether the payload is still there (a build helper fetches it itself)."""
    return bool(client.exists(key))


class PayloadGone(Exception):
    """A build helper found no payload under the claim: it had its verdict, or expired."""


class PayloadUnreadable(Exception):
    """A build helper could not read the claimed payload (Redis did not answer)."""


class Undecodable:
    """A stored payload that is not JSON: dead-lettered as its text."""

    def __init__(self, text: str, error: InvalidBatch) -> None:
        self.text = text
        self.error = error


def decoded(raw: bytes) -> Any:
    try:
        return decode(raw)
    except InvalidBatch as exc:
        return Undecodable(raw.decode("utf-8", errors="replace"), exc)


def letter_payload(payload: Any, raw: bytes | None) -> Any:
    """What a dead letter keeps of the batch: its payload, or the text it was stored as."""
    if raw is not None:  # a build helper had it: decode it here, once
        payload = decoded(raw)
    return payload.text if isinstance(payload, Undecodable) else payload


_publishers: weakref.WeakKeyDictionary[Celery, redis.Redis] = (  # one client per app
    weakref.WeakKeyDictionary())
_publishers_lock = threading.Lock()


def _payloads(app: Celery) -> redis.Redis:
    """The Redis client that stores this app's payloads (its broker), made once."""
    with _publishers_lock:
        client = _publishers.get(app)
        if client is None:
            client = _publishers[app] = redis.Redis.from_url(app.conf.broker_url)
        return client


def publish(app: Celery, payload: Mapping[str, Any]) -> str:
    """Send one batch to the ingest queue; returns the Celery task id.

    The payload goes to Redis under its own key, the message carries the key
    (the module's docstring). The payload is stored first: a message never names a key
    that was not written. Publishing raises redis.RedisError or kombu's
    OperationalError when Redis is unreachable (then a stored payload is
    left to its expiry).
    """
    from topology.ingest.celery_app import DEFAULT_PAYLOAD_TTL, QUEUE, TASK_NAME

    task_id = uuid.uuid4().hex
    ttl = app.conf.get("topology_payload_ttl") or DEFAULT_PAYLOAD_TTL
    key = put(_payloads(app), task_id, payload, ttl)
    batch_id = payload.get("batch_id")
    return app.send_task(TASK_NAME, kwargs={"claim": key, "batch_id": batch_id},
                         queue=QUEUE, task_id=task_id).id
