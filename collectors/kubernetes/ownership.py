"""Owner team, tier and SLO overrides read from labels and annotations.

Documented keys (set them as annotations or labels on the Deployment,
StatefulSet, DaemonSet or ReplicaSet, or on the pod template):

===========================  ==================================================
``topology.io/team``         owning team; falls back to the ``team`` label,
                             then ``owner``, then ``app.kubernetes.io/part-of``
``topology.io/tier``         tier (e.g. ``1``, ``critical``, ``frontend``);
                             falls back to the ``tier`` label
``topology.io/slo-p99-ms``   latency objective, p99 in milliseconds (> 0)
``topology.io/slo-error-rate``  error-rate objective, a fraction in [0, 1]
===========================  ==================================================

The workload object wins over the pod, and annotations win over labels. The
resolved values travel in the lease's ``workload.labels`` under the
``topology.io/*`` keys above, so downstream code reads one key per attribute
whatever the cluster's own convention is. SLO values that are not valid numbers
in range are dropped (and logged), never passed on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)

TEAM = "topology.io/team"
TIER = "topology.io/tier"
SLO_P99_MS = "topology.io/slo-p99-ms"
SLO_ERROR_RATE = "topology.io/slo-error-rate"

# Resolved key -> keys looked up, in order of preference.
TEXT_KEYS: Mapping[str, tuple[str, ...]] = {
    TEAM: (TEAM, "team", "owner", "app.kubernetes.io/part-of"),
    TIER: (TIER, "tier"),
}
NUMBER_BOUNDS: Mapping[str, tuple[float, float, bool]] = {
    # key: (low, high, low bound exclusive)
    SLO_P99_MS: (0.0, math.inf, True),
    SLO_ERROR_RATE: (0.0, 1.0, False),
}

# Labels that differ from pod to pod of one workload: never part of its identity.
PER_POD_LABELS = frozenset({
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
})


def _first(key: str, sources: Sequence[Mapping[str, str]]) -> str | None:
    for source in sources:
        value = source.get(key, "").strip()
        if value:
            return value
    return None


def _valid_number(key: str, text: str, where: str) -> str | None:
    low, high, exclusive = NUMBER_BOUNDS[key]
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value) or value > high or value < low or (exclusive and value == low):
        log.warning("%s: ignoring %s=%r (expected a number in %s%s, %s])",
                    where, key, text, "(" if exclusive else "[", low, high)
        return None
    return text


def overrides(
    workload: tuple[Mapping[str, str], Mapping[str, str]] | None,
    pod: tuple[Mapping[str, str], Mapping[str, str]] | None,
    where: str = "",
) -> dict[str, str]:
    """Resolved team/tier/SLO keys from (annotations, labels) of workload and pod."""
    sources: list[Mapping[str, str]] = []
    for pair in (workload, pod):
        if pair is not None:
            sources.extend(pair)  # annotations first, then labels
    out: dict[str, str] = {}
    for resolved, keys in TEXT_KEYS.items():
        for key in keys:
            value = _first(key, sources)
            if value is not None:
                out[resolved] = value
                break
    for key in NUMBER_BOUNDS:
        value = _first(key, sources)
        if value is not None and (checked := _valid_number(key, value, where)) is not None:
            out[key] = checked
    return out


def workload_labels(
    workload: tuple[Mapping[str, str], Mapping[str, str]] | None,
    pod: tuple[Mapping[str, str], Mapping[str, str]],
    where: str = "",
) -> dict[str, str]:
    """Labels to report for a workload: its own (else the pod's stable ones) plus overrides."""
    base = workload[1] if workload is not None else pod[1]
    labels = {k: v for k, v in base.items() if k not in PER_POD_LABELS}
    labels.update(overrides(workload, pod, where))
    return labels
