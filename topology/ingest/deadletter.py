"""Dead letters: batches the ingest task gave up on, kept in Redis to inspect and replay.

A batch lands here when it is invalid (never retried) or still failing after
its last retry. Entries live in a hash (id -> JSON) with a sorted set giving
their order; the id is the batch id, so a batch that fails again after a
replay replaces its old entry instead of appearing twice. Replaying publishes
the payload again and only then removes the entry: a crash in between leaves
the entry to be replayed once more, which the batch id makes harmless.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import redis

ENTRIES_KEY = "topology:deadletter"
ORDER_KEY = "topology:deadletter:order"

Publish = Callable[[Any], None]


@dataclass(frozen=True)
class DeadLetter:
    id: str
    batch_id: str | None
    payload: Any
    error_type: str
    error: str
    attempts: int
    failed_at: float
    task_id: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> DeadLetter:
        return cls(**json.loads(text))


def letter_id(payload: Any) -> str:
    """The batch id when the payload has one, else a digest of the payload."""
    if isinstance(payload, Mapping):
        batch_id = payload.get("batch_id")
        if isinstance(batch_id, str) and batch_id:
            return batch_id
    digest = hashlib.sha256(
        json.dumps(payload, sort_keys=True, default=repr).encode()
    ).hexdigest()
    return f"payload-{digest[:16]}"


class DeadLetters:
    def __init__(self, client: redis.Redis, clock: Callable[[], float] = time.time) -> None:
        self._redis = client
        self._clock = clock

    @classmethod
    def from_url(cls, url: str) -> DeadLetters:
        return cls(redis.Redis.from_url(url))

    def add(
        self,
        payload: Any,
        error: BaseException | str,
        attempts: int,
        task_id: str | None = None,
    ) -> DeadLetter:
        ident = letter_id(payload)
        batch_id = payload.get("batch_id") if isinstance(payload, Mapping) else None
        letter = DeadLetter(
            id=ident,
            batch_id=batch_id if isinstance(batch_id, str) else None,
            payload=payload,
            error_type=type(error).__name__ if isinstance(error, BaseException) else "error",
            error=str(error),
            attempts=attempts,
            failed_at=self._clock(),
            task_id=task_id,
        )
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(ENTRIES_KEY, ident, letter.to_json())
        pipe.zadd(ORDER_KEY, {ident: letter.failed_at})
        pipe.execute()
        return letter

    def __len__(self) -> int:
        return int(self._redis.hlen(ENTRIES_KEY))

    def ids(self) -> list[str]:
        return [raw.decode() for raw in self._redis.zrange(ORDER_KEY, 0, -1)]

    def list(self) -> list[DeadLetter]:
        """All entries, oldest failure first."""
        return list(self._iter(self.ids()))

    def _iter(self, ids: list[str]) -> Iterator[DeadLetter]:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for raw in self._redis.hmget(ENTRIES_KEY, chunk):
                if raw is not None:
                    yield DeadLetter.from_json(raw)

    def get(self, ident: str) -> DeadLetter | None:
        raw = self._redis.hget(ENTRIES_KEY, ident)
        return None if raw is None else DeadLetter.from_json(raw)

    def remove(self, ident: str) -> bool:
        pipe = self._redis.pipeline(transaction=True)
        pipe.hdel(ENTRIES_KEY, ident)
        pipe.zrem(ORDER_KEY, ident)
        removed, _ = pipe.execute()
        return bool(removed)

    def purge(self) -> int:
        pipe = self._redis.pipeline(transaction=True)
        pipe.hlen(ENTRIES_KEY)
        pipe.delete(ENTRIES_KEY, ORDER_KEY)
        count, _ = pipe.execute()
        return int(count)

    def replay(self, ident: str, publish: Publish) -> bool:
        """Publish one entry's payload again, then drop the entry; False if no such id."""
        letter = self.get(ident)
        if letter is None:
            return False
        publish(letter.payload)
        self.remove(ident)
        return True

    def replay_all(self, publish: Publish) -> int:
        return sum(self.replay(ident, publish) for ident in self.ids())
