"""Row twins of the output types answers build by the thousand (edges, their stats,
paths and time series points): named tuples with the same attribute names.

The schema is made from the Strawberry types (types.py); execution, lean or
standard, only reads attributes. A named tuple is built positionally in C,
about a third of the cost of a keyword-only dataclass, and a map of 20,000
edges builds some 80,000 of them. A test checks each twin has exactly the
fields of its type, in the same order.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from topology.api.graphql.health import Health


class StatsRow(NamedTuple):
    """t.TrafficStats"""

    requests: int
    request_rate: float
    errors: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class PathRow(NamedTuple):
    """t.PathCount"""

    path: str
    requests: int


class PointRow(NamedTuple):
    """t.SeriesPoint"""

    start: datetime | None
    requests: int
    errors: int


class EdgeRow(NamedTuple):
    """t.Edge"""

    client: str
    server: str
    protocols: list[str]
    stats: StatsRow
    health: Health
    weight: float
    top_paths: list[PathRow]
    time_series: list[PointRow]
    exemplar_trace_ids: list[str]
