"""The services a group of batches mentions, kept as two mentions per service id.

A store reduces a batch's service mentions to one row per id: the latest
mention (greatest `seen`; of equal ones, the later) describes the service, and
its seen range runs from the least `seen` to the greatest
(`rows.merge_services`, `ladybug_pairs.service_states`). Two mentions per id
carry all of that: the first one with the least `seen`, and the latest one.
Handed over in that order, they reduce to the same row as every mention would.

A coalesced group (coalesce.py) used to keep every mention of every batch it
took: at bench/ingest_e2e.py's load, 16 batches mention 400 services each,
6,400 Service objects (2.5 MB) for 400 ids, held until the group was written.
"""

from __future__ import annotations

from collections.abc import Iterable

from topology.model import Service


class Mentions:
    """Service mentions in the order they came, reduced to two per id (module docstring)."""

    __slots__ = ("_by_id",)

    def __init__(self) -> None:
        # id -> [first mention with the least seen, latest mention]
        self._by_id: dict[str, list[Service]] = {}

    def extend(self, services: Iterable[Service]) -> None:
        by_id = self._by_id
        for service in services:
            kept = by_id.get(service.id)
            if kept is None:
                by_id[service.id] = [service, service]
                continue
            if service.seen < kept[0].seen:
                kept[0] = service
            if service.seen >= kept[1].seen:
                kept[1] = service

    def services(self) -> list[Service]:
        """The kept mentions: per id, the earliest, then the latest when it is another."""
        out: list[Service] = []
        for earliest, latest in self._by_id.values():
            out.append(earliest)
            if latest is not earliest:
                out.append(latest)
        return out
