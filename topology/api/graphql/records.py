"""Service records (the node and its first/last seen) for answers, by id.

A map of 2,000 services read them by id on every request: a store read and a
record per row (15 to 25 ms at 2,000). On the embedded store the writer runs
in this process and reports every write that may change services (a batch
carrying services, any retention run: `topology/store/changes.py`), which are
also the only writes that change a service's first or last seen. So every
record, read once, stays exact until such a write: the records are held in
the store's service copy (`queries/service_cache.py`, shared with the named
queries) and a read happens only after services changed. The generation is
taken before the read that fills the copy, so a write that read missed always
makes the copy stale.

A request answered from the copy still opens a snapshot first
(`reading_begins`): the flights of identical requests (flights.py) then know
it began reading. Stores without a change log (Neo4j) are read every time.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from queries.service_cache import ServiceRecord, cache_of
from queries.services import BY_IDS, SERVICE_COLUMNS, ServiceNode, rows_of
from topology.store.base import GraphStore
from topology.store.changes import changes_of, reading_begins
from topology.store.statement import Statement

__all__ = ["SERVICES_FULL", "ServiceRecord", "fetch_services"]

_RETURNS = f"{SERVICE_COLUMNS}, s.first_seen AS first_seen, s.last_seen AS last_seen"
SERVICES_FULL = Statement.same("api_services_by_id", f"{BY_IDS} RETURN {_RETURNS}")
# Fewer wanted ids than this, with a copy held but stale: read just those (a service
# page during live ingest) rather than every service again.
FEW = 32


def fetch_services(store: GraphStore, ids: Iterable[str]) -> dict[str, ServiceRecord]:
    """The records of the services among `ids` that exist, by id in id order."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    changes = changes_of(store)
    if changes is not None:
        reading_begins(store)  # before the check: the answer is as of this moment or later
        cache = cache_of(changes)
        held = cache.fresh()
        if held is None and (len(wanted) >= FEW or not cache.filled):
            held = cache.current(store)
        if held is not None:
            return {sid: held.records[sid] for sid in wanted if sid in held.records}
    return _records(store.read_arrow(SERVICES_FULL, {"ids": wanted}))


def _records(table: pa.Table) -> dict[str, ServiceRecord]:
    return {row["id"]: ServiceRecord(ServiceNode.of(row), row["first_seen"], row["last_seen"])
            for row in rows_of(table)}
