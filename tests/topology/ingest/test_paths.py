"""Path folding and the per-edge template cap (memory and real Redis)."""

from __future__ import annotations

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from topology.ingest.paths import MAX_PATH_LENGTH, OVERFLOW_TEMPLATE, FoldRule, PathFolder
from topology.ingest.templates import MemoryTemplateCap, RedisTemplateCap, TemplateCap


@pytest.mark.parametrize(("raw", "template"), [
    ("/orders/42", "/orders/{id}"),
    ("/orders/42/items/7?expand=1#top", "/orders/{id}/items/{id}"),
    ("/u/123e4567-e89b-12d3-a456-426614174000/x", "/u/{uuid}/x"),
    ("/blobs/9f1c2b3a4d5e6f70", "/blobs/{hex}"),
    ("/blobs/deadbeefdeadbeef", "/blobs/deadbeefdeadbeef"),  # no digit: a word, not an id
    ("/t/AbCdEfGhIjKlMnOpQrSt12345", "/t/{token}"),
    ("/users/user1234/profile", "/users/{id}/profile"),
    ("/api/v1/health", "/api/v1/health"),
    ("/", "/"),
    ("", ""),
    ("42/x", "{id}/x"),                 # a relative path's first segment too
    ("/a//7/", "/a//{id}/"),             # empty segments kept
    ("/123abc/x", "/123abc/x"),          # an id rule must match the whole segment
])
def test_default_rules(raw: str, template: str) -> None:
    assert PathFolder().fold(raw) == template


_segment = st.one_of(
    st.text("0123456789\u0660\u0967\uff10\u00b2+-.", max_size=8),  # numbers, and look-alikes
    st.text("0123456789abcdefXYZ-_=", min_size=1, max_size=24),
    st.from_regex(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", fullmatch=True),
)


@given(segments=st.lists(_segment, max_size=6))
@settings(max_examples=500, deadline=None)
def test_plain_numbers_fold_as_the_rules_fold_them(segments: list[str]) -> None:
    """The shortcut for segments of digits alone gives what the rules give."""
    path = "/" + "/".join(segments)
    by_rules = PathFolder()
    by_rules._number = None  # the regex for every segment
    assert PathFolder().fold(path) == by_rules.fold(path)


@given(paths=st.lists(st.tuples(st.lists(_segment, max_size=4),
                                 st.text("0123456789", min_size=1, max_size=7)),
                       min_size=1, max_size=8),
       repeat=st.integers(min_value=1, max_value=3))
@settings(max_examples=300, deadline=None)
def test_paths_ending_in_a_number_fold_as_the_rules_fold_them(
    paths: list[tuple[list[str], str]], repeat: int,
) -> None:
    """A path ending in digits folds its head once (then reused for the next ids)."""
    folder, by_rules = PathFolder(), PathFolder()
    by_rules._number = None
    for _ in range(repeat):
        for head, number in paths:
            path = "/" + "/".join([*head, number])
            assert folder.fold(path) == by_rules.fold(path)


@pytest.mark.parametrize("head", [
    "/" + "a" * (MAX_PATH_LENGTH - 5),  # the head fits, with the number it does not
    "/" + "b" * (MAX_PATH_LENGTH + 10),  # the head alone is cut
    "/x?q=1",  # a query string before the last slash
    "/x#frag",
])
def test_long_heads_and_query_strings_fold_as_the_rules_fold_them(head: str) -> None:
    folder, by_rules = PathFolder(), PathFolder()
    by_rules._number = None
    for number in ("42", "7", "123456"):
        assert folder.fold(f"{head}/{number}") == by_rules.fold(f"{head}/{number}")


def test_rules_are_configurable_and_ordered() -> None:
    folder = PathFolder([FoldRule(r"[a-z]{2}-[A-Z]{2}", "{locale}"), FoldRule(r"\d+", "{n}")])
    assert folder.fold("/en-GB/items/12") == "/{locale}/items/{n}"


@pytest.fixture(params=["memory", "redis"])
def make_cap(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    if request.param == "memory":
        yield MemoryTemplateCap
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    yield lambda cap: RedisTemplateCap(client, cap)
    client.close()


def test_cap_admits_first_templates_and_keeps_them(make_cap) -> None:  # type: ignore[no-untyped-def]
    cap: TemplateCap = make_cap(2)
    first = cap.admit({"a|b": {"/x", "/y", "/z"}, "a|c": {"/x"}})
    assert first == {"a|b": {"/x", "/y"}, "a|c": {"/x"}}
    again = cap.admit({"a|b": {"/y", "/w"}})
    assert again == {"a|b": {"/y"}}
    assert TemplateCap.apply("/w", again["a|b"]) == OVERFLOW_TEMPLATE


def test_capped_batch_folds_the_rest_into_overflow(make_cap, settings) -> None:  # type: ignore[no-untyped-def]
    from topology.ingest.pipeline import Ingestor

    ingestor = Ingestor(None, settings, None, lambda: 0.0)  # type: ignore[arg-type]
    ingestor.templates = make_cap(3)
    web = {"namespace": "shop", "name": "web", "kind": "Deployment"}
    calls = [{"timestamp": 60.0, "side": "client", "source": {"workload": web},
              "destination": {"ip": "1.2.3.4"}, "host": "api.example.com",
              "protocol": "http", "method": "GET", "path": f"/{word}"}
             for word in ("a", "b", "c", "d", "e", "e")]
    batch = ingestor.build({"batch_id": "b", "agent": "n", "calls": calls})
    assert sorted((row.path, row.requests) for row in batch.calls) == [
        ("/a", 1), ("/b", 1), ("/c", 1), (OVERFLOW_TEMPLATE, 3)]


def test_many_edges_are_admitted_as_each_alone(redis_url: str) -> None:
    """Admission of edges in chunks per script call decides as the in-memory cap does."""
    client = redis.Redis.from_url(redis_url)
    wanted = {f"c{n}|s{n % 7}": {f"/t{k}" for k in range(n % 5)} | {"/x"} for n in range(1_200)}
    later = {edge: {"/x", "/late"} for edge in list(wanted)[::3]}
    shared, alone = RedisTemplateCap(client, 3), MemoryTemplateCap(3)
    assert shared.admit(wanted) == alone.admit(wanted)
    assert RedisTemplateCap(client, 3).admit(later) == alone.admit(later)  # no local copy
    assert shared.admit(later) == alone.admit(later)  # its local copy, and Redis for /late
    client.close()


def test_refused_are_the_templates_not_admitted(make_cap) -> None:  # type: ignore[no-untyped-def]
    cap: TemplateCap = make_cap(2)
    assert cap.refuse({"a|b": {"/x", "/y", "/z"}, "a|c": {"/x"}}) == {"a|b": {"/z"}}
    assert cap.refuse({"a|b": {"/x", "/w"}, "a|c": {"/x"}}) == {"a|b": {"/w"}}  # known here
    assert cap.refuse({"a|c": {"/v", "/u", "/t"}}) == {"a|c": {"/u", "/v"}}  # sorted: /t fits
    assert cap.admit({"a|b": {"/x", "/y", "/z", "/w"}}) == {"a|b": {"/x", "/y"}}


def test_many_edges_are_refused_as_each_alone(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    wanted = {f"c{n}|s{n % 7}": {f"/t{k}" for k in range(n % 5)} | {"/x"} for n in range(1_200)}
    shared, alone = RedisTemplateCap(client, 3), MemoryTemplateCap(3)
    assert shared.refuse(wanted) == alone.refuse(wanted)
    assert shared.refuse(wanted) == alone.refuse(wanted)  # from its local copy
    client.close()
