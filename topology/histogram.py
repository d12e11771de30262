"""Fixed-bin latency histograms.

Every CALLS bucket carries counts over the same bins, so histograms from any
number of buckets add element-wise and percentiles can be estimated after the
sum: the reason the bins are fixed and never configurable per edge.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from itertools import accumulate

# Upper bounds in milliseconds; the last bin is open-ended (everything above 30 s).
BOUNDS_MS: tuple[float, ...] = (
    0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 25, 35, 50, 75, 100, 150, 250, 350, 500,
    750, 1000, 1500, 2500, 5000, 10000, 30000,
)
BIN_COUNT = len(BOUNDS_MS) + 1


def empty() -> list[int]:
    return [0] * BIN_COUNT


def bin_index(duration_ms: float) -> int:
    """The bin a duration falls into: bin i holds BOUNDS_MS[i-1] < d <= BOUNDS_MS[i]."""
    return bisect.bisect_left(BOUNDS_MS, duration_ms)


def add_into(target: list[int], other: Sequence[int]) -> None:
    if len(other) != BIN_COUNT:
        raise ValueError(f"histogram has {len(other)} bins, expected {BIN_COUNT}")
    for i, count in enumerate(other):
        target[i] += count


def quantile(histogram: Sequence[int], q: float) -> float | None:
    """Estimate the q-quantile (0 < q <= 1) in ms, interpolating inside the bin.

    Returns None for an empty histogram. The open last bin reports its lower bound.
    """
    if not 0 < q <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {q}")
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(histogram):
        if count and seen + count >= rank:
            lower = BOUNDS_MS[i - 1] if i > 0 else 0.0
            if i >= len(BOUNDS_MS):
                return float(lower)
            upper = BOUNDS_MS[i]
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return float(BOUNDS_MS[-1])


def p50_p95_p99(hist: Sequence[int]) -> tuple[float | None, float | None, float | None]:
    """The three quantiles an answer shows, in one pass: the same estimate as
    `quantile`, from one running sum and a bisection per quantile (the map
    computes them for every edge and every service)."""
    running = list(accumulate(hist))
    total = running[-1] if running else 0
    if not total:
        return None, None, None
    return (_at(hist, running, 0.5 * total), _at(hist, running, 0.95 * total),
            _at(hist, running, 0.99 * total))


def _at(hist: Sequence[int], running: list[int], rank: float) -> float:
    i = bisect.bisect_left(running, rank)  # first bin whose running sum reaches the rank
    if i >= len(running):
        return float(BOUNDS_MS[-1])
    lower = BOUNDS_MS[i - 1] if i > 0 else 0.0
    if i >= len(BOUNDS_MS):
        return float(lower)
    seen = running[i - 1] if i > 0 else 0
    return lower + (BOUNDS_MS[i] - lower) * (rank - seen) / hist[i]
