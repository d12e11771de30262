"""Service records (the node and its first/last seen) for answers, by id.

A map of 2,000 services read them by id on every request: a store read and a
record per row (15 to 25 ms at 2,000). On the embedded store the writer runs
in this process and reports every write that may change services (a batch
carrying services, any retention run: `topology/store/changes.py`), which are
also the only writes that change a service's first or last seen. So every
record, read once, stays exact until such a write: the records are held here
(one copy per store, in its change log's caches) and a read happens only
after services changed. The generation is taken before the read that fills
the copy, so a write that read missed always makes the copy stale.

A request answered from the copy still opens a snapshot first
(`reading_begins`): the flights of identical requests (flights.py) then know
it began reading. Stores without a change log (Neo4j) are read every time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pyarrow as pa

from queries.services import BY_IDS, SERVICE_COLUMNS, ServiceNode, rows_of
from topology.store.base import GraphStore
from topology.store.changes import Changes, changes_of, reading_begins
from topology.store.statement import Statement

_RETURNS = f"{SERVICE_COLUMNS}, s.first_seen AS first_seen, s.last_seen AS last_seen"
SERVICES_FULL = Statement.same("api_services_by_id", f"{BY_IDS} RETURN {_RETURNS}")
ALL_SERVICES_FULL = Statement.same("api_all_services", f"MATCH (s:Service) RETURN {_RETURNS}")
# Fewer wanted ids than this, with a copy held but stale: read just those (a service
# page during live ingest) rather than every service again.
FEW = 32


@dataclass(frozen=True)
class ServiceRecord:
    node: ServiceNode
    first_seen: int | None
    last_seen: int | None


def fetch_services(store: GraphStore, ids: Iterable[str]) -> dict[str, ServiceRecord]:
    """The records of the services among `ids` that exist, by id in id order."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    changes = changes_of(store)
    if changes is not None:
        copy: RecordCopy = changes.cache("api_service_records", lambda: RecordCopy(changes))
        held = copy.current(store, many=len(wanted) >= FEW)
        if held is not None:
            return {sid: held[sid] for sid in wanted if sid in held}
    return _records(store.read_arrow(SERVICES_FULL, {"ids": wanted}))


class RecordCopy:
    """Every service's record, as of a change-log generation."""

    def __init__(self, changes: Changes) -> None:
        self.changes = changes
        self._lock = threading.Lock()
        self._held: tuple[int, dict[str, ServiceRecord]] | None = None

    def current(self, store: GraphStore, *, many: bool) -> Mapping[str, ServiceRecord] | None:
        """The records, exact for a read starting now; read again when stale, unless a
        copy is held and not `many` services are wanted (None then)."""
        reading_begins(store)  # before the check: the answer is as of this moment or later
        with self._lock:
            held = self._held
        if held is not None and not self.changes.services_changed_since(held[0]):
            return held[1]
        if held is not None and not many:
            return None
        generation = self.changes.generation  # before the read's snapshot
        records = _records(store.read_arrow(ALL_SERVICES_FULL))
        with self._lock:
            if self._held is None or self._held[0] < generation:
                self._held = (generation, records)
        return records


def _records(table: pa.Table) -> dict[str, ServiceRecord]:
    return {row["id"]: ServiceRecord(ServiceNode.of(row), row["first_seen"], row["last_seen"])
            for row in rows_of(table)}
