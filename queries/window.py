"""Time windows and the bucket aggregates every traffic query shares."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from topology import histogram


@dataclass(frozen=True)
class Window:
    """Buckets whose start lies in [since, until), epoch seconds."""

    since: int
    until: int

    def __post_init__(self) -> None:
        if self.until <= self.since:
            raise ValueError(f"window until ({self.until}) must be after since ({self.since})")

    @property
    def seconds(self) -> int:
        return self.until - self.since

    @classmethod
    def last(cls, seconds: int, now: int) -> Window:
        return cls(now - seconds, now)

    def params(self) -> dict[str, int]:
        return {"since": self.since, "until": self.until}


@dataclass(frozen=True)
class Thresholds:
    """When a service counts as degraded in a window."""

    error_rate: float = 0.05
    p99_ms: float = 1000.0


@dataclass(frozen=True)
class Traffic:
    requests: int
    errors: int
    latency_sum_ms: float
    hist: tuple[int, ...]

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def quantile(self, q: float) -> float | None:
        return histogram.quantile(self.hist, q)

    @property
    def mean_ms(self) -> float | None:
        return self.latency_sum_ms / self.requests if self.requests else None

    def degraded(self, thresholds: Thresholds) -> bool:
        p99 = self.quantile(0.99)
        return self.error_rate > thresholds.error_rate or (
            p99 is not None and p99 > thresholds.p99_ms)


EMPTY = Traffic(0, 0, 0.0, tuple(histogram.empty()))

# Aggregate columns of bucket rows: the histogram is summed bin by bin in the
# database (a list property `hist` in Neo4j, scalar columns h0..h25 in
# LadybugDB: docs/storage.md). LadybugDB sums INT64 into INT128, which reaches
# Python as Decimal and costs about four times as much to fetch: its integer
# sums are cast back to INT64.
_HIST_NEO4J = ", ".join(f"sum(k.hist[{i}]) AS h{i}" for i in range(histogram.BIN_COUNT))
_HIST_LADYBUG = ", ".join(
    f"CAST(sum(k.h{i}) AS INT64) AS h{i}" for i in range(histogram.BIN_COUNT)
)
_TOTALS_NEO4J = (
    "sum(k.requests) AS requests, sum(k.errors) AS errors, sum(k.latency_sum) AS latency"
)
_TOTALS_LADYBUG = (
    "CAST(sum(k.requests) AS INT64) AS requests, CAST(sum(k.errors) AS INT64) AS errors, "
    "sum(k.latency_sum) AS latency"
)
AGGREGATES = {
    "neo4j": f"{_TOTALS_NEO4J}, {_HIST_NEO4J}",
    "ladybug": f"{_TOTALS_LADYBUG}, {_HIST_LADYBUG}",
}
IN_WINDOW = "k.bucket >= $since AND k.bucket < $until"


def start_runs(starts: list[int], width: int) -> list[tuple[int, int]]:
    """Contiguous runs of bucket starts as [since, until) ranges."""
    runs: list[list[int]] = []
    for start in sorted(starts):
        if runs and runs[-1][1] == start:
            runs[-1][1] = start + width
        else:
            runs.append([start, start + width])
    return [(since, until) for since, until in runs]


_HIST_COLUMNS = operator.itemgetter(*(f"h{i}" for i in range(histogram.BIN_COUNT)))


def traffic(row: Mapping[str, Any]) -> Traffic:
    """Traffic from a row holding the AGGREGATES columns (a hot path: one call per row)."""
    return Traffic(
        int(row["requests"] or 0), int(row["errors"] or 0), float(row["latency"] or 0.0),
        tuple(count or 0 for count in _HIST_COLUMNS(row)),
    )


def add(a: Traffic, b: Traffic) -> Traffic:
    return Traffic(
        a.requests + b.requests, a.errors + b.errors, a.latency_sum_ms + b.latency_sum_ms,
        tuple(x + y for x, y in zip(a.hist, b.hist, strict=True)),
    )
