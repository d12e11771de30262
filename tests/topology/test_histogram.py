"""The one-pass quantiles equal topology.histogram.quantile on every histogram tried."""

from __future__ import annotations

import random

from topology import histogram
from topology.histogram import p50_p95_p99

QUANTILES = (0.5, 0.95, 0.99)


def test_one_pass_matches_histogram_quantile() -> None:
    rng = random.Random(5)
    cases = [histogram.empty(), [0] * (histogram.BIN_COUNT - 1) + [7], [1] + [0] * 25]
    cases += [[rng.choice((0, 0, 0, 1, 2, 9, 1000)) for _ in range(histogram.BIN_COUNT)]
              for _ in range(3000)]
    for hist in cases:
        expected = tuple(histogram.quantile(hist, q) for q in QUANTILES) if sum(hist) else (
            None, None, None)
        assert p50_p95_p99(hist) == expected, hist
