"""Team, tier and SLO overrides from labels and annotations."""

from __future__ import annotations

import pytest

from collectors.kubernetes import ownership as o

Pair = tuple[dict[str, str], dict[str, str]]  # (annotations, labels)


@pytest.mark.parametrize(("workload", "pod", "expected"), [
    (({o.TEAM: "payments"}, {"team": "other"}), ({}, {}), {o.TEAM: "payments"}),
    (({}, {o.TEAM: "payments", "team": "other"}), ({}, {}), {o.TEAM: "payments"}),
    (({}, {"team": "search"}), ({}, {}), {o.TEAM: "search"}),
    (({}, {"owner": "infra"}), ({}, {}), {o.TEAM: "infra"}),
    (({}, {"app.kubernetes.io/part-of": "shop"}), ({}, {}), {o.TEAM: "shop"}),
    (({}, {"team": "from-workload"}), ({o.TEAM: "from-pod"}, {}), {o.TEAM: "from-pod"}),
    (({}, {"team": "from-workload"}), ({}, {"team": "from-pod"}), {o.TEAM: "from-workload"}),
    (None, ({}, {"team": "pod-only"}), {o.TEAM: "pod-only"}),
    (({o.TIER: "1"}, {"tier": "3"}), ({}, {}), {o.TIER: "1"}),
    (({}, {"tier": "frontend"}), ({}, {}), {o.TIER: "frontend"}),
    (({o.SLO_P99_MS: "250", o.SLO_ERROR_RATE: "0.001"}, {}), ({}, {}),
     {o.SLO_P99_MS: "250", o.SLO_ERROR_RATE: "0.001"}),
    (({o.SLO_P99_MS: "0"}, {}), ({}, {}), {}),
    (({o.SLO_P99_MS: "fast"}, {}), ({}, {}), {}),
    (({o.SLO_P99_MS: "nan"}, {}), ({}, {}), {}),
    (({o.SLO_ERROR_RATE: "1.5"}, {}), ({}, {}), {}),
    (({o.SLO_ERROR_RATE: "0"}, {}), ({}, {}), {o.SLO_ERROR_RATE: "0"}),
    (({o.TEAM: "  "}, {"team": "fallback"}), ({}, {}), {o.TEAM: "fallback"}),
], ids=[
    "annotation", "label", "team-label", "owner-label", "part-of", "explicit-key-on-pod-wins",
    "workload-wins-same-key", "no-workload-object", "tier-annotation", "tier-label",
    "slos", "p99-zero-dropped", "p99-text-dropped", "p99-nan-dropped", "error-rate-above-1",
    "error-rate-zero-ok", "blank-is-absent",
])
def test_overrides(workload: Pair | None, pod: Pair, expected: dict[str, str]) -> None:
    assert o.overrides(workload, pod, where="Deployment shop/x") == expected


def test_workload_labels_drop_per_pod_keys_and_carry_overrides() -> None:
    pod = ({}, {"app": "web", "pod-template-hash": "5d8f7c9b4", "team": "web"})
    assert o.workload_labels(None, pod) == {"app": "web", "team": "web", o.TEAM: "web"}
    workload = ({o.TIER: "2"}, {"app": "web", "env": "prod"})
    assert o.workload_labels(workload, pod) == {
        "app": "web", "env": "prod", o.TEAM: "web", o.TIER: "2"}
