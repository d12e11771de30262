"""Service nodes as the queries return them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from topology.model import EXTERNAL_KINDS
from topology.store.base import GraphStore
from topology.store.statement import Statement

SERVICE_COLUMNS = (
    "s.id AS id, s.name AS name, s.namespace AS namespace, s.cluster AS cluster, "
    "s.kind AS kind, s.labels AS labels"
)
SERVICES_BY_ID = Statement.same(
    "services_by_id", f"MATCH (s:Service) WHERE s.id IN $ids RETURN {SERVICE_COLUMNS}"
)


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
    return {row["id"]: ServiceNode.of(row) for row in store.read(SERVICES_BY_ID, {"ids": wanted})}
