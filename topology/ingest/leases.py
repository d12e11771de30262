"""IP leases: which workload owned an IP (and optionally a port) from when to when.

A call is resolved by the lease that covered its address at the call's own
timestamp, so a pod that reuses an old pod's IP never inherits its edges. When
several leases cover the moment, a lease for the exact port beats a lease for
the whole IP, and among equals the one that started last wins (a newer owner
supersedes an old lease whose end was never reported).

Leases arrive in the `endpoints` of batches (from the Kubernetes watcher and
the agents) and must apply to later batches from other agents: the Redis store
shares them between workers; the memory store serves embedded mode. Both hand
out a `LeaseTable`, a plain in-memory view used on the hot path.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from topology.ingest.identity import workload_service_id
from topology.ingest.snapshots import SnapshotCache

_PREFIX = "topology:lease:"
_VERSION = "topology:version:leases"  # bumped after every lease write
_INF = math.inf


@dataclass(frozen=True, slots=True)
class Lease:
    ip: str
    workload: Mapping[str, Any] = field(hash=False, compare=False)
    start: float
    end: float | None = None
    port: int | None = None
    watched: bool = True  # False: no agent observes this workload's outgoing calls
    service_id: str = ""

    @classmethod
    def from_endpoint(cls, endpoint: Mapping[str, Any]) -> Lease:
        workload = endpoint["workload"]
        return cls(
            ip=endpoint["ip"], workload=workload, start=float(endpoint["from"]),
            end=None if endpoint.get("to") is None else float(endpoint["to"]),
            port=endpoint.get("port"), watched=endpoint.get("watched", True),
            service_id=workload_service_id(workload),
        )

    @property
    def key(self) -> str:
        """Identity of the lease within its IP (the end may be learned later)."""
        return f"{'' if self.port is None else self.port}|{self.start!r}|{self.service_id}"

    def covers(self, ts: float) -> bool:
        return self.start <= ts < (_INF if self.end is None else self.end)


def _merge_end(a: float | None, b: float | None) -> float | None:
    """A reported end is final: keep the earliest end anyone reported."""
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


class LeaseTable:
    """Leases by IP, answering `lookup(ip, port, ts)` without I/O."""

    def __init__(self) -> None:
        self._by_ip: dict[str, list[Lease]] = {}

    def put(self, lease: Lease) -> None:
        leases = self._by_ip.setdefault(lease.ip, [])
        for i, old in enumerate(leases):
            if old.key == lease.key:
                end = _merge_end(old.end, lease.end)
                if end != lease.end:
                    lease = Lease(lease.ip, lease.workload, lease.start, end, lease.port,
                                  lease.watched, lease.service_id)
                leases[i] = lease
                return
        leases.append(lease)

    def lookup(self, ip: str, port: int | None, ts: float) -> Lease | None:
        """The lease covering `ip` (and `port`) at `ts`; portless leases when port is None."""
        leases = self._by_ip.get(ip)
        if not leases:
            return None
        if len(leases) == 1:  # the common case: one pod has had this IP
            lease = leases[0]
            if (lease.port is None or lease.port == port) and lease.start <= ts and (
                    lease.end is None or ts < lease.end):
                return lease
            return None
        best: Lease | None = None
        best_rank = (-1, -_INF)
        for lease in leases:
            if lease.port is not None and lease.port != port:
                continue
            if not lease.covers(ts):
                continue
            rank = (0 if lease.port is None else 1, lease.start)
            if rank > best_rank:
                best, best_rank = lease, rank
        return best

    def prune(self, before: float) -> None:
        """Forget leases that ended before `before`."""
        for ip in list(self._by_ip):
            kept = [v for v in self._by_ip[ip] if v.end is None or v.end >= before]
            if kept:
                self._by_ip[ip] = kept
            else:
                del self._by_ip[ip]

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_ip.values())


class LeaseStore(ABC):
    """Where leases live between batches."""

    snapshots = True  # `table` copies only the IPs asked for (False: it ignores them)

    @abstractmethod
    def add(self, leases: Iterable[Lease]) -> None:
        """Remember leases (idempotent; a later report of an end closes an open lease)."""

    @abstractmethod
    def table(self, ips: Iterable[str]) -> LeaseTable:
        """A snapshot holding at least every lease of the given IPs."""


class MemoryLeaseStore(LeaseStore):
    """Leases in this process; ended leases are forgotten `keep` seconds after their end."""

    snapshots = False

    def __init__(self, keep: float, clock: Callable[[], float]) -> None:
        self._table = LeaseTable()
        self._keep = keep
        self._clock = clock

    def add(self, leases: Iterable[Lease]) -> None:
        for lease in leases:
            self._table.put(lease)
        self._table.prune(self._clock() - self._keep)

    def table(self, ips: Iterable[str]) -> LeaseTable:
        return self._table


# KEYS[1] = the IP's hash; ARGV = now, keep, then (field, value) pairs. A value is
# "<end or empty>|<lease json>"; the stored end is the earliest ever reported.
_ADD = """
local now = tonumber(ARGV[1])
local keep = tonumber(ARGV[2])
local function ending(v)
  local bar = string.find(v, '|', 1, true)
  return tonumber(string.sub(v, 1, bar - 1)), bar
end
for i = 3, #ARGV, 2 do
  local f, v = ARGV[i], ARGV[i + 1]
  local old = redis.call('HGET', KEYS[1], f)
  if old then
    local old_end = ending(old)
    local new_end, bar = ending(v)
    if old_end and (not new_end or old_end < new_end) then
      v = string.sub(old, 1, string.find(old, '|', 1, true) - 1) .. string.sub(v, bar)
    end
  end
  redis.call('HSET', KEYS[1], f, v)
end
local all = redis.call('HGETALL', KEYS[1])
local open, last = false, 0
for j = 1, #all, 2 do
  local e = ending(all[j + 1])
  if not e then open = true
  elseif e < now - keep then redis.call('HDEL', KEYS[1], all[j])
  elseif e > last then last = e end
end
if open then
  redis.call('PERSIST', KEYS[1])
elseif redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('EXPIRE', KEYS[1], math.max(1, math.ceil(last + keep - now)))
end
return 1
"""


class RedisLeaseStore(LeaseStore):
    """Leases in Redis, one hash per IP, shared by every worker.

    Reads go through a `SnapshotCache`: a batch reads Redis only for IPs this
    process has not read since the last lease write (by any worker).
    """

    def __init__(self, redis: Any, keep: float, clock: Callable[[], float]) -> None:
        self._redis = redis
        self._keep = keep
        self._clock = clock
        self._script = redis.register_script(_ADD)
        self.cache: SnapshotCache[list[Lease]] = SnapshotCache(redis, _VERSION, clock)

    def add(self, leases: Iterable[Lease]) -> None:
        by_ip: dict[str, list[Lease]] = {}
        for lease in leases:
            by_ip.setdefault(lease.ip, []).append(lease)
        if not by_ip:
            return
        now = self._clock()
        pipe = self._redis.pipeline(transaction=False)
        for ip, group in by_ip.items():
            args: list[Any] = [repr(now), repr(self._keep)]
            for lease in group:
                end = "" if lease.end is None else repr(lease.end)
                body = json.dumps({"workload": lease.workload, "from": lease.start,
                                   "port": lease.port, "watched": lease.watched},
                                  separators=(",", ":"))
                args += [lease.key, f"{end}|{body}"]
            self._script(keys=[_PREFIX + ip], args=args, client=pipe)
        self.cache.bump(pipe)
        pipe.execute()

    def table(self, ips: Iterable[str]) -> LeaseTable:
        table = LeaseTable()
        wanted = list(dict.fromkeys(ips))
        if not wanted:
            return table
        for leases in self.cache.get(wanted, self._load).values():
            for lease in leases:
                table.put(lease)
        return table

    def _load(self, ips: list[str]) -> dict[str, list[Lease]]:
        pipe = self._redis.pipeline(transaction=False)
        for ip in ips:
            pipe.hvals(_PREFIX + ip)
        out: dict[str, list[Lease]] = {}
        for ip, values in zip(ips, pipe.execute(), strict=True):
            leases = out[ip] = []
            for raw in values:
                text = raw.decode() if isinstance(raw, bytes) else raw
                end, _, body = text.partition("|")
                data = json.loads(body)
                leases.append(Lease(
                    ip=ip, workload=data["workload"], start=float(data["from"]),
                    end=float(end) if end else None, port=data["port"],
                    watched=data["watched"], service_id=workload_service_id(data["workload"]),
                ))
        return out
