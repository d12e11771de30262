"""Health rules: defaults, warning band, SLO overrides from labels."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from topology.api.graphql.health import (
    DEFAULT,
    Health,
    Slo,
    judge,
    judge_many,
    slo_from_labels,
)

JUDGE = [
    (0, 0.0, None, DEFAULT, Health.UNKNOWN),
    (100, 0.0, 10.0, DEFAULT, Health.HEALTHY),
    (100, 0.009, 10.0, DEFAULT, Health.HEALTHY),
    (100, 0.01, 10.0, DEFAULT, Health.WARNING),  # errors at 1%: approaching
    (100, 0.0, 801.0, DEFAULT, Health.WARNING),  # p99 over 80% of the 1000 ms SLO
    (100, 0.05, 10.0, DEFAULT, Health.WARNING),  # at the SLO, not over it
    (100, 0.051, 10.0, DEFAULT, Health.CRITICAL),
    (100, 0.0, 1000.5, DEFAULT, Health.CRITICAL),
    (100, 0.0, 130.0, Slo(0.05, 150.0), Health.WARNING),
    (100, 0.0, 151.0, Slo(0.05, 150.0), Health.CRITICAL),
    (100, 0.0, 10.0, Slo(0.0, 1000.0), Health.HEALTHY),
    (100, 0.001, 10.0, Slo(0.0, 1000.0), Health.CRITICAL),
    (100, 0.004, 10.0, Slo(0.005, 1000.0), Health.HEALTHY),
    (100, 0.005, 10.0, Slo(0.005, 1000.0), Health.WARNING),
]


@pytest.mark.parametrize(("requests", "error_rate", "p99", "slo", "health"), JUDGE)
def test_judge(requests: int, error_rate: float, p99: float | None, slo: Slo,
               health: Health) -> None:
    assert judge(requests, error_rate, p99, slo) is health


def test_judge_many_over_the_table() -> None:
    requests, rates, p99s, slos, expected = zip(*JUDGE, strict=True)
    assert judge_many(list(requests), list(rates), list(p99s), list(slos)) == list(expected)


cases = st.lists(st.tuples(
    st.integers(0, 3), st.floats(0, 1), st.none() | st.floats(0, 3000),
    st.sampled_from([DEFAULT, Slo(0.05, 150.0), Slo(0.0, 1000.0), Slo(0.005, 1000.0)]),
), max_size=20)


@given(cases, st.booleans(), st.booleans())
def test_judge_many_judges_each_like_judge(drawn: list[tuple], one_slo: bool,
                                           given_once: bool) -> None:
    """Per-value SLOs, or one SLO (as a list of it, or given once)."""
    if one_slo:
        drawn = [(*case[:3], DEFAULT) for case in drawn]
    columns: list = [list(column) for column in zip(*drawn, strict=True)] or [[], [], [], []]
    if one_slo and given_once:
        columns[3] = DEFAULT
    assert judge_many(*columns) == [judge(*case) for case in drawn]


LABELS = [
    ((), DEFAULT),
    (("team=x",), DEFAULT),
    (("topology.io/slo-p99-ms=150",), Slo(DEFAULT.error_rate, 150.0)),
    (("topology.io/slo-error-rate=0.01", "topology.io/slo-p99-ms=2500"), Slo(0.01, 2500.0)),
    (("topology.io/slo-p99-ms=abc", "topology.io/slo-error-rate=2"), DEFAULT),
    (("topology.io/slo-p99-ms=0", "topology.io/slo-p99-ms=nan"), DEFAULT),
]


@pytest.mark.parametrize(("labels", "slo"), LABELS)
def test_slo_from_labels(labels: tuple[str, ...], slo: Slo) -> None:
    assert slo_from_labels(labels) == slo
