"""DNS observations: which names resolved to an IP, used to name external services.

Two clocks are involved, on purpose:

* Event time decides whether an answer names a call: for each (IP, name) we keep
  the first and last time the name was seen resolving to the IP, and a call at
  `t` is named by it when `first - SKEW <= t < last + retention` (connections
  outlive the DNS TTL, hence the retention setting rather than the answer's TTL).
  Among several names, the one seen most recently before the call wins.
* Storage time decides when an answer is forgotten: `retention` after it was
  last written (Redis EXPIRE; the memory store does the same with the injected
  clock), so the cache stays bounded.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from topology.ingest.snapshots import SnapshotCache

SKEW = 5.0  # seconds a call may precede the answer's timestamp (clock skew, batching)
_PREFIX = "topology:dns:"
_VERSION = "topology:version:dns"  # bumped after every DNS write


@dataclass(frozen=True, slots=True)
class Sighting:
    name: str
    first: float
    last: float


def answers(dns: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, tuple[float, float]]]:
    """Batch `dns` records folded into ip -> name -> (first, last)."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for record in dns:
        name = record["name"].rstrip(".").lower()
        ts = float(record["timestamp"])
        for ip in record["ips"]:
            names = out.setdefault(ip, {})
            old = names.get(name)
            names[name] = (ts, ts) if old is None else (min(old[0], ts), max(old[1], ts))
    return out


class DnsTable:
    """Sightings by IP, answering `lookup(ip, ts)` without I/O."""

    def __init__(
        self, retention: float, load: Callable[[str], list[Sighting]] | None = None
    ) -> None:
        self.retention = retention
        self._by_ip: dict[str, list[Sighting]] = {}
        self._load = load  # fills an IP on first lookup (memory store), else absent = none

    def put(self, ip: str, sighting: Sighting) -> None:
        self._by_ip.setdefault(ip, []).append(sighting)

    def lookup(self, ip: str, ts: float) -> str | None:
        sightings = self._by_ip.get(ip)
        if sightings is None:
            sightings = self._by_ip[ip] = self._load(ip) if self._load else []
        best, best_seen = None, float("-inf")
        for s in sightings:
            if not s.first - SKEW <= ts < s.last + self.retention:
                continue
            seen = s.last if s.last <= ts + SKEW else s.first
            if seen > best_seen or (seen == best_seen and best is not None and s.name < best):
                best, best_seen = s.name, seen
        return best


class DnsStore(ABC):
    snapshots = True  # `table` copies only the IPs asked for

    def __init__(self, retention: float) -> None:
        self.retention = retention

    @abstractmethod
    def record(self, dns: Iterable[Mapping[str, Any]]) -> None:
        """Remember the batch's DNS answers."""

    @abstractmethod
    def table(self, ips: Iterable[str]) -> DnsTable:
        """A snapshot holding every live sighting of the given IPs."""


class MemoryDnsStore(DnsStore):
    snapshots = False

    def __init__(self, retention: float, clock: Callable[[], float]) -> None:
        super().__init__(retention)
        self._clock = clock
        # ip -> name -> (first, last, expires at)
        self._by_ip: dict[str, dict[str, tuple[float, float, float]]] = {}

    def record(self, dns: Iterable[Mapping[str, Any]]) -> None:
        now = self._clock()
        self._purge(now)
        expires = now + self.retention
        for ip, names in answers(dns).items():
            known = self._by_ip.setdefault(ip, {})
            for name, (first, last) in names.items():
                old = known.get(name)
                if old is not None and old[2] > now:
                    first, last = min(first, old[0]), max(last, old[1])
                known[name] = (first, last, expires)

    def table(self, ips: Iterable[str]) -> DnsTable:
        """A view that reads live sightings of an IP when first asked (`ips` unused)."""
        now = self._clock()

        def load(ip: str) -> list[Sighting]:
            return [Sighting(name, first, last)
                    for name, (first, last, expires) in self._by_ip.get(ip, {}).items()
                    if expires > now]

        return DnsTable(self.retention, load)

    def _purge(self, now: float) -> None:
        for ip in list(self._by_ip):
            names = self._by_ip[ip]
            for name in [n for n, v in names.items() if v[2] <= now]:
                del names[name]
            if not names:
                del self._by_ip[ip]


# KEYS[1] = the IP's hash; ARGV = retention seconds, then (name, first, last) triples.
# A field holds "first|last"; first only ever decreases and last only increases.
_RECORD = """
for i = 2, #ARGV, 3 do
  local name, first, last = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local f, l = ARGV[i + 1], ARGV[i + 2]
  local old = redis.call('HGET', KEYS[1], name)
  if old then
    local bar = string.find(old, '|', 1, true)
    local of, ol = string.sub(old, 1, bar - 1), string.sub(old, bar + 1)
    if tonumber(of) < first then f = of end
    if tonumber(ol) > last then l = ol end
  end
  redis.call('HSET', KEYS[1], name, f .. '|' .. l)
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""


class RedisDnsStore(DnsStore):
    """Sightings in Redis, one hash per IP, expiring `retention` after the last write.

    Reads go through a `SnapshotCache` (only IPs not read since the last DNS
    write by any worker go to Redis).
    """

    def __init__(
        self, redis: Any, retention: float, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(retention)
        self._redis = redis
        self._script = redis.register_script(_RECORD)
        self.cache: SnapshotCache[list[tuple[str, Sighting]]] = SnapshotCache(
            redis, _VERSION, clock)

    def record(self, dns: Iterable[Mapping[str, Any]]) -> None:
        folded = answers(dns)
        if not folded:
            return
        pipe = self._redis.pipeline(transaction=False)
        ttl_ms = max(1, int(self.retention * 1000))
        for ip, names in folded.items():
            args: list[Any] = [ttl_ms]
            for name, (first, last) in names.items():
                args += [name, repr(first), repr(last)]
            self._script(keys=[_PREFIX + ip], args=args, client=pipe)
        self.cache.bump(pipe)
        pipe.execute()

    def table(self, ips: Iterable[str]) -> DnsTable:
        table = DnsTable(self.retention)
        wanted = list(dict.fromkeys(ips))
        if not wanted:
            return table
        for sightings in self.cache.get(wanted, self._load).values():
            for ip, sighting in sightings:
                table.put(ip, sighting)
        return table

    def _load(self, ips: list[str]) -> dict[str, list[tuple[str, Sighting]]]:
        pipe = self._redis.pipeline(transaction=False)
        for ip in ips:
            pipe.hgetall(_PREFIX + ip)
        out: dict[str, list[tuple[str, Sighting]]] = {}
        for ip, fields in zip(ips, pipe.execute(), strict=True):
            sightings = out[ip] = []
            for raw_name, raw in fields.items():
                name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
                text = raw.decode() if isinstance(raw, bytes) else raw
                first, _, last = text.partition("|")
                sightings.append((ip, Sighting(name, float(first), float(last))))
        return out
