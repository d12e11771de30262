"""Per-IP snapshots read from Redis, reused while nothing was written since.

Every batch resolves its calls against the leases and DNS answers of the IPs
it mentions. Reading them from Redis for each batch costs a round trip with
one command per IP plus decoding; yet between two batches they rarely change.
Writers bump a version counter in Redis after each write (`bump`), and a
reader first reads that counter (one GET): while it is unchanged, the IPs
already read are served from this process's copy and only new IPs go to
Redis. Any write by any worker changes the counter, so a lease or DNS answer
written before a batch is read is always seen by it, as without the cache.

Two things change without a write: Redis expiring a key (DNS answers
`retention` after their last write, ended leases after the redelivery
window). The copy is therefore also dropped `max_age` seconds after it was
filled, so it can hold an answer at most that much longer than Redis does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

DEFAULT_MAX_AGE = 5.0  # seconds
_LIMIT = 100_000  # IPs kept; beyond that the copy starts afresh


class SnapshotCache(Generic[T]):
    def __init__(
        self, redis: Any, version_key: str, clock: Callable[[], float],
        max_age: float = DEFAULT_MAX_AGE,
    ) -> None:
        self._redis = redis
        self.version_key = version_key
        self._clock = clock
        self._max_age = max_age
        self._version: Any = object()  # matches no reply: the first read fills
        self._filled = 0.0
        self._values: dict[str, T] = {}
        self.loads = 0  # IPs read from Redis (for tests)

    def get(self, ips: Iterable[str], load: Callable[[list[str]], dict[str, T]]) -> dict[str, T]:
        """The value of each IP: from the copy while current, else from `load`."""
        wanted = list(dict.fromkeys(ips))
        version = self._redis.get(self.version_key)
        now = self._clock()
        if (version != self._version or now - self._filled >= self._max_age
                or now < self._filled or len(self._values) > _LIMIT):
            self._values = {}
            self._version = version
            self._filled = now
        values = self._values
        missing = [ip for ip in wanted if ip not in values]
        if missing:
            self.loads += len(missing)
            values.update(load(missing))
        return {ip: values[ip] for ip in wanted}

    def bump(self, pipe: Any) -> None:
        """Queue the version increment on `pipe`, after the writes it follows."""
        pipe.incr(self.version_key)
