"""Expected numbers of the golden scenario, from the calls it sends."""

from __future__ import annotations

from topology import histogram


def quantiles(*groups: tuple[int, float]) -> tuple[float | None, ...]:
    """p50, p95, p99 of `count` calls of `ms` each, per group."""
    hist = histogram.empty()
    for count, ms in groups:
        hist[histogram.bin_index(ms)] += count
    return tuple(histogram.quantile(hist, q) for q in (0.5, 0.95, 0.99))
