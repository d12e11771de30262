"""What every resolver gets: the store, settings, the principal's scope and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from queries.services import ServiceNode
from queries.traversal import health as served_or_made
from queries.window import Window
from topology.api.graphql import build
from topology.api.graphql import types as t
from topology.api.graphql.errors import NOT_FOUND, ApiError
from topology.api.graphql.records import fetch_services
from topology.api.graphql.scope import Scope
from topology.settings import Settings
from topology.store.base import GraphStore


@dataclass(frozen=True)
class Ctx:
    store: GraphStore
    settings: Settings
    scope: Scope
    clock: Callable[[], float]

    @property
    def max_items(self) -> int:
        return self.settings.graphql_max_items

    def visible_node(self, service_id: str) -> ServiceNode:
        """The service, or NOT_FOUND when it does not exist or is out of scope (same answer)."""
        record = fetch_services(self.store, [service_id]).get(service_id)
        if record is None or not self.scope.sees_service(self.store, record.node):
            raise ApiError(NOT_FOUND, f"no service with id {service_id[:200]!r}")
        return record.node

    def services(self, ids: list[str], window: Window) -> dict[str, t.Service]:
        """Services with their own traffic in the window (served, else made)."""
        records = fetch_services(self.store, ids)
        traffic = served_or_made(self.store, sorted(records), window)
        return {sid: build.service(rec.node, window, traffic.get(sid), rec)
                for sid, rec in records.items()}


T = TypeVar("T")


def cap(items: list[T], limit: int) -> tuple[list[T], bool]:
    return (items[:limit], True) if len(items) > limit else (items, False)
