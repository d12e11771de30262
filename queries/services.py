"""Service nodes as the queries return them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from topology.model import EXTERNAL_KINDS
from topology.store.base import GraphStore
from topology.store.statement import Statement

SERVICE_COLUMNS = (
    "s.id AS id, s.name AS name, s.namespace AS namespace, s.cluster AS cluster, "
    "s.kind AS kind, s.labels AS labels"
)
# One key lookup per id: LadybugDB tests `s.id IN $ids` against the whole list for
# every service (a map's 2,000 ids: about three times as long as the lookups).
BY_IDS = "UNWIND $ids AS wanted MATCH (s:Service {id: wanted})"
SERVICES_BY_ID = Statement.same("services_by_id", f"{BY_IDS} RETURN {SERVICE_COLUMNS}")


class UnknownService(LookupError):
    """A query named a service id the store does not hold."""


@dataclass(frozen=True)
class ServiceNode:
    id: str
    name: str
    namespace: str
    cluster: str
    kind: str
    labels: tuple[str, ...]  # "key=value", sorted

    @property
    def external(self) -> bool:
        return self.kind in EXTERNAL_KINDS

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> ServiceNode:
        return cls(
            row["id"], row["name"] or "", row["namespace"] or "", row["cluster"] or "",
            row["kind"] or "", tuple(sorted(row["labels"] or ())),
        )


def services_by_id(store: GraphStore, ids: Iterable[str]) -> dict[str, ServiceNode]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return {row["id"]: ServiceNode.of(row)
            for row in rows_of(store.read_arrow(SERVICES_BY_ID, {"ids": wanted}))}


def rows_of(table: pa.Table) -> Iterator[dict[str, Any]]:
    """The rows of an Arrow result as dicts (read column by column: cheaper than `read`
    for a few thousand rows)."""
    if not table.num_rows:
        return iter(())
    names = table.column_names
    return (dict(zip(names, values, strict=True))
            for values in zip(*(table.column(n).to_pylist() for n in names), strict=True))
