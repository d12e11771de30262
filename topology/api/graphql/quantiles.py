"""p50, p95 and p99 of a fixed-bin histogram in one pass.

Same estimate as `topology.histogram.quantile` (interpolation inside the bin,
the open last bin reports its lower bound), computed for the three quantiles
an answer shows from one running sum (`accumulate`) and a bisection per
quantile: the map computes them for every edge and every service.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate

from topology.histogram import BOUNDS_MS

QUANTILES = (0.5, 0.95, 0.99)
_LAST = len(BOUNDS_MS)
_TOP = float(BOUNDS_MS[-1])


def p50_p95_p99(hist: Sequence[int]) -> tuple[float | None, float | None, float | None]:
    running = list(accumulate(hist))
    total = running[-1] if running else 0
    if not total:
        return None, None, None
    return (_at(hist, running, 0.5 * total), _at(hist, running, 0.95 * total),
            _at(hist, running, 0.99 * total))


def _at(hist: Sequence[int], running: list[int], rank: float) -> float:
    # the first bin whose running sum reaches the rank (it holds calls: rank > 0)
    i = bisect_left(running, rank)
    if i >= len(running):
        return _TOP
    lower = BOUNDS_MS[i - 1] if i > 0 else 0.0
    if i >= _LAST:
        return float(lower)
    seen = running[i - 1] if i > 0 else 0
    return lower + (BOUNDS_MS[i] - lower) * (rank - seen) / hist[i]
