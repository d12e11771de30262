"""Lease bookkeeping: who holds which address, turned into lease entries.

A holder (a pod or a Service, by key) declares the addresses it should hold
now and for which workload; :meth:`LeaseBook.reconcile` answers with the
entries that open, update or close leases. Leases on one address never
overlap: an address claimed while another holder still has it (an IP reused
before the old pod's deletion was seen) closes the old lease where the new one
starts.

``from`` of a holder's first lease is the start the caller knows (a pod's
startTime, a Service's creation), clamped to the clock and to the end of the
previous lease on the address; later leases of the same holder start at the
clock. Entries are ``endpoints`` items of the batch schema.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Addr = tuple[str, int | None]  # (ip, port or None for the whole IP)
Lease = dict[str, Any]
Workload = dict[str, Any]


@dataclass(slots=True)
class _Held:
    holder: str
    workload: Workload
    start: float


def _identity(workload: Workload) -> tuple[str, str, str, str]:
    return (workload["cluster"], workload["namespace"], workload["kind"], workload["name"])


def _order(addr: Addr) -> tuple[str, int]:
    return (addr[0], -1 if addr[1] is None else addr[1])


def entry(addr: Addr, workload: Workload, start: float, end: float | None) -> Lease:
    lease: Lease = {"ip": addr[0]}
    if addr[1] is not None:
        lease["port"] = addr[1]
    lease["workload"] = {**workload, "labels": dict(workload["labels"])}
    lease["from"] = start
    if end is not None:
        lease["to"] = end
    return lease


class LeaseBook:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._leases: dict[Addr, _Held] = {}
        self._held: dict[str, set[Addr]] = {}
        self._last_end: dict[Addr, float] = {}
        self._started: set[str] = set()

    def reconcile(
        self, holder: str, desired: dict[Addr, Workload], first_start: float | None
    ) -> list[Lease]:
        """Make ``holder`` hold exactly ``desired``; returns the entries that says so."""
        now = self._clock()
        out: list[Lease] = []
        for addr in sorted(self._held.get(holder, set()) - desired.keys(), key=_order):
            out.append(self._close(addr, now))
        start = now
        if holder not in self._started and first_start is not None:
            start = min(first_start, now)
        for addr in sorted(desired, key=_order):
            workload = desired[addr]
            held = self._leases.get(addr)
            begin = max(start, self._last_end.get(addr, -math.inf))
            if held is not None and held.holder == holder:
                if _identity(held.workload) == _identity(workload):
                    if held.workload != workload:  # labels changed: same lease, new state
                        held.workload = workload
                        out.append(entry(addr, workload, held.start, None))
                    continue
                out.append(self._close(addr, now))
                begin = now
            elif held is not None:  # reused while another holder still has it
                begin = min(max(begin, held.start), now)
                out.append(self._close(addr, begin))
            self._leases[addr] = _Held(holder, workload, begin)
            self._held.setdefault(holder, set()).add(addr)
            self._started.add(holder)
            out.append(entry(addr, workload, begin, None))
        return out

    def forget(self, holder: str) -> list[Lease]:
        """The holder is gone: close what it holds and drop its history."""
        out = self.reconcile(holder, {}, None)
        self._held.pop(holder, None)
        self._started.discard(holder)
        return out

    def open_leases(self) -> list[Lease]:
        return [entry(a, h.workload, h.start, None)
                for a, h in sorted(self._leases.items(), key=lambda item: _order(item[0]))]

    def _close(self, addr: Addr, end: float) -> Lease:
        held = self._leases.pop(addr)
        self._held.get(held.holder, set()).discard(addr)
        end = max(end, held.start)
        self._last_end[addr] = end
        return entry(addr, held.workload, held.start, end)
