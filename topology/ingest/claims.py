"""Claim check: a batch's payload waits in Redis under its own key; Celery carries the key.

Kombu's Redis transport base64-encodes a message body into a JSON envelope,
pushes that envelope to the queue and, once a worker takes it, writes it
again into its hash of unacknowledged messages: a batch of 5,000 calls
(about 1.7 MB of JSON) crossed Redis three times at 2.3 MB, and both ends
paid JSON envelopes and base64 for it. `publish` (tasks.py) instead stores
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

from typing import Any

import orjson
import redis
from kombu.utils import json as kombu_json

from topology.ingest import wirejson
from topology.ingest.schema import InvalidBatch

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
    try:
        return wirejson.loads(raw)
    except ValueError as exc:
        raise InvalidBatch(f"$: the stored payload is not JSON ({exc})") from None


def put(client: redis.Redis, task_id: str, payload: Any, ttl: float) -> str:
    """Store the payload of task `task_id`; returns its key."""
    key = key_for(task_id)
    client.set(key, encode(payload), px=int(ttl * 1000))
    return key


def fetch(client: redis.Redis, key: str) -> bytes | None:
    """The stored payload, or None when it is gone (deleted after its verdict, or expired)."""
    raw = client.get(key)
    return None if raw is None else bytes(raw)
