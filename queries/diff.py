"""Window diff: what appeared, disappeared or changed between two windows."""

from __future__ import annotations

from dataclasses import dataclass

from queries.service_map import Edge, ServiceMap, service_map
from queries.window import Window
from topology.store.base import GraphStore


@dataclass(frozen=True)
class EdgeChange:
    client: str
    server: str
    error_rate_before: float
    error_rate_after: float
    p99_before_ms: float | None
    p99_after_ms: float | None
    reasons: tuple[str, ...]  # "error_rate", "p99"


@dataclass(frozen=True)
class WindowDiff:
    before: Window
    after: Window
    services_added: tuple[str, ...]
    services_removed: tuple[str, ...]
    edges_added: tuple[tuple[str, str], ...]
    edges_removed: tuple[tuple[str, str], ...]
    edges_changed: tuple[EdgeChange, ...]


def window_diff(
    store: GraphStore, before: Window, after: Window, filter_text: str = "", *,
    error_rate_delta: float = 0.05, p99_ratio: float = 1.5,
) -> WindowDiff:
    """Compare two windows' maps. An edge changed when its error rate moved by at least
    `error_rate_delta` (absolute) or its p99 grew or shrank by at least `p99_ratio`."""
    old = service_map(store, before, filter_text)
    new = service_map(store, after, filter_text)
    old_edges, new_edges = _edges(old), _edges(new)
    old_ids = {s.id for s in old.services}
    new_ids = {s.id for s in new.services}
    changed = []
    for pair in sorted(old_edges.keys() & new_edges.keys()):
        change = _change(old_edges[pair], new_edges[pair], error_rate_delta, p99_ratio)
        if change is not None:
            changed.append(change)
    return WindowDiff(
        before, after, tuple(sorted(new_ids - old_ids)), tuple(sorted(old_ids - new_ids)),
        tuple(sorted(new_edges.keys() - old_edges.keys())),
        tuple(sorted(old_edges.keys() - new_edges.keys())), tuple(changed),
    )


def _edges(service_map: ServiceMap) -> dict[tuple[str, str], Edge]:
    return {(e.client, e.server): e for e in service_map.edges}


def _change(old: Edge, new: Edge, error_rate_delta: float, p99_ratio: float) -> EdgeChange | None:
    reasons = []
    if abs(new.error_rate - old.error_rate) >= error_rate_delta:
        reasons.append("error_rate")
    if old.p99_ms and new.p99_ms:
        ratio = max(new.p99_ms / old.p99_ms, old.p99_ms / new.p99_ms)
        if ratio >= p99_ratio:
            reasons.append("p99")
    if not reasons:
        return None
    return EdgeChange(old.client, old.server, old.error_rate, new.error_rate, old.p99_ms,
                      new.p99_ms, tuple(reasons))
