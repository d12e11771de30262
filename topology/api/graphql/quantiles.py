"""p50, p95 and p99 of a fixed-bin histogram in one pass.

Same estimate as `topology.histogram.quantile` (interpolation inside the bin,
the open last bin reports its lower bound), computed for the three quantiles
an answer shows in a single walk over the bins: the map computes them for
every edge and every service.
"""

from __future__ import annotations

from collections.abc import Sequence

from topology.histogram import BOUNDS_MS

QUANTILES = (0.5, 0.95, 0.99)
_LAST = len(BOUNDS_MS)


def p50_p95_p99(hist: Sequence[int]) -> tuple[float | None, float | None, float | None]:
    total = sum(hist)
    if not total:
        return None, None, None
    ranks = [q * total for q in QUANTILES]
    found: list[float] = []
    seen = 0
    for i, count in enumerate(hist):
        if not count:
            continue
        while len(found) < 3 and seen + count >= ranks[len(found)]:
            lower = BOUNDS_MS[i - 1] if i > 0 else 0.0
            if i >= _LAST:
                found.append(float(lower))
            else:
                found.append(lower + (BOUNDS_MS[i] - lower) * (ranks[len(found)] - seen) / count)
        if len(found) == 3:
            break
        seen += count
    while len(found) < 3:
        found.append(float(BOUNDS_MS[-1]))
    return found[0], found[1], found[2]
