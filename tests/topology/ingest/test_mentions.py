"""A group's service mentions, two per id, reduce to the rows that every mention would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from topology.ingest.mentions import Mentions
from topology.model import Service
from topology.store import rows
from topology.store.ladybug_pairs import Known, service_states


def svc(sid: str, seen: int, name: str = "", labels: dict[str, str] | None = None) -> Service:
    return Service(sid, name or sid, "Deployment", labels=labels or {}, seen=seen)


mentions = st.lists(st.builds(
    svc, st.sampled_from(["a", "b", "c"]), st.integers(0, 5),
    st.sampled_from(["", "x", "y"]),
    st.dictionaries(st.sampled_from(["team", "tier"]), st.sampled_from(["1", "2"]))),
    max_size=30)


def reduced(services: list[Service], chunks: int = 1) -> list[Service]:
    kept = Mentions()
    step = max(1, len(services) // chunks)
    for start in range(0, len(services), step):
        kept.extend(services[start:start + step])
    return kept.services()


@settings(max_examples=300)
@given(mentions, st.integers(1, 4))
def test_two_mentions_per_id_reduce_as_every_mention_does(services: list[Service],
                                                          chunks: int) -> None:
    kept = reduced(services, chunks)
    assert service_states(kept, Known()) == service_states(services, Known())
    assert rows.merge_services(kept) == rows.merge_services(services)
    assert len(kept) <= 2 * len({s.id for s in services})


def test_the_later_of_equal_seens_and_the_first_least_seen_are_kept() -> None:
    first, low, later, low_again = svc("a", 5, "x"), svc("a", 3, "y"), svc("a", 5, "z"), \
        svc("a", 3, "w")
    assert reduced([first, low, later, low_again]) == [low, later]
    assert reduced([first]) == [first]
