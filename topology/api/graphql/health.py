"""Health of a service or an edge from its traffic and its SLO.

HEALTHY: errors under the warning rate (1%) and p99 under 80% of the SLO's p99.
WARNING: approaching the SLO (either of those crossed, the SLO still met).
CRITICAL: the SLO is breached (error rate above the SLO's, or p99 above its p99).
UNKNOWN: no traffic in the window.

The SLO has defaults; a service overrides them with the labels the Kubernetes
watcher reports (`topology.io/slo-p99-ms`, `topology.io/slo-error-rate`, see
docs/kubernetes-watcher.md). An edge is judged by the SLO of its server.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

import pyarrow as pa
import pyarrow.compute as pc

from queries.window import Thresholds, Traffic

SLO_P99_LABEL = "topology.io/slo-p99-ms"
SLO_ERROR_RATE_LABEL = "topology.io/slo-error-rate"
WARNING_ERROR_RATE = 0.01
WARNING_LATENCY_SHARE = 0.8
DEFAULT_SLO = Thresholds()  # 5% errors, p99 1000 ms: the degraded rule of blast radius


class Health(Enum):
    HEALTHY = "healthy"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Slo:
    error_rate: float
    p99_ms: float

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.error_rate, self.p99_ms)


DEFAULT = Slo(DEFAULT_SLO.error_rate, DEFAULT_SLO.p99_ms)


def slo_from_labels(labels: Iterable[str], default: Slo = DEFAULT) -> Slo:
    """The default SLO with the service's label overrides; invalid values are ignored."""
    error_rate, p99 = default.error_rate, default.p99_ms
    for label in labels:
        key, _, raw = label.partition("=")
        if key not in (SLO_P99_LABEL, SLO_ERROR_RATE_LABEL):
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        if not math.isfinite(value):
            continue
        if key == SLO_P99_LABEL and value > 0:
            p99 = value
        elif key == SLO_ERROR_RATE_LABEL and 0 <= value <= 1:
            error_rate = value
    if (error_rate, p99) == (default.error_rate, default.p99_ms):
        return default  # one object for the usual case: `judge_many` sees one SLO
    return Slo(error_rate, p99)


def judge(requests: int, error_rate: float, p99_ms: float | None, slo: Slo) -> Health:
    if requests == 0:
        return Health.UNKNOWN
    if error_rate > slo.error_rate or (p99_ms is not None and p99_ms > slo.p99_ms):
        return Health.CRITICAL
    if (error_rate > 0 and error_rate >= min(WARNING_ERROR_RATE, slo.error_rate)) or (
            p99_ms is not None and p99_ms > WARNING_LATENCY_SHARE * slo.p99_ms):
        return Health.WARNING
    return Health.HEALTHY


def of_traffic(traffic: Traffic, slo: Slo) -> Health:
    return judge(traffic.requests, traffic.error_rate, traffic.quantile(0.99), slo)


BY_CODE = (Health.HEALTHY, Health.WARNING, Health.CRITICAL, Health.UNKNOWN)


def judge_many(requests: Sequence[int] | pa.ChunkedArray,
               error_rates: Sequence[float] | pa.Array,
               p99s: Sequence[float | None], slos: Sequence[Slo] | Slo) -> list[Health]:
    """`judge` over columns (one value per edge), with the same comparisons done
    column-wise: the map judges every edge of the answer. `slos`: one per value, or
    one for all of them."""
    by_code = BY_CODE
    return [by_code[c] for c in judge_codes(requests, error_rates, p99s, slos).to_pylist()]


def judge_codes(requests: Sequence[int] | pa.ChunkedArray | pa.Array,
                error_rates: Sequence[float] | pa.Array,
                p99s: Sequence[float | None] | pa.Array, slos: Sequence[Slo] | Slo) -> pa.Array:
    """`judge_many` as indices into BY_CODE (an Arrow array)."""
    if not len(requests):
        return pa.array([], pa.int64())
    rate = error_rates if isinstance(error_rates, pa.Array) else pa.array(
        error_rates, pa.float64())
    p99 = p99s if isinstance(p99s, pa.Array) else pa.array(p99s, pa.float64())
    if isinstance(slos, Slo):
        one: Slo | None = slos
    else:
        one = slos[0] if all(slo is slos[0] for slo in slos) else None
    limit_rate: pa.Array | float = (one.error_rate if one is not None else
                                    pa.array([s.error_rate for s in slos], pa.float64()))
    limit_p99: pa.Array | float = (one.p99_ms if one is not None else
                                   pa.array([s.p99_ms for s in slos], pa.float64()))
    warn_rate = (min(WARNING_ERROR_RATE, one.error_rate) if one is not None
                 else pc.min_element_wise(limit_rate, WARNING_ERROR_RATE))
    warn_p99 = (WARNING_LATENCY_SHARE * one.p99_ms if one is not None
                else pc.multiply(WARNING_LATENCY_SHARE, limit_p99))
    critical = pc.or_(pc.greater(rate, limit_rate),
                      pc.fill_null(pc.greater(p99, limit_p99), False))
    warning = pc.or_(pc.and_(pc.greater(rate, 0.0), pc.greater_equal(rate, warn_rate)),
                     pc.fill_null(pc.greater(p99, warn_p99), False))
    counts = (requests if isinstance(requests, pa.ChunkedArray | pa.Array)
              else pa.array(requests, pa.int64()))
    return pc.if_else(pc.equal(counts, 0), 3,
                      pc.if_else(critical, 2, pc.if_else(warning, 1, 0)))
