"""Dead letters in a real Redis: add, list, show, replay, purge."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from topology.ingest.deadletter import DeadLetters, letter_id


@pytest.fixture
def letters(redis_url: str) -> DeadLetters:
    ticks = iter(range(1000, 2000))
    return DeadLetters(redis.Redis.from_url(redis_url), clock=lambda: float(next(ticks)))


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"batch_id": "b-1", "agent": "a"}, "b-1"),
        ({"batch_id": "", "agent": "a"}, None),
        ({"agent": "a"}, None),
        ([1, 2, 3], None),
        ("not an object", None),
    ],
)
def test_letter_id_is_the_batch_id_or_a_stable_digest(payload: Any, expected: str | None) -> None:
    ident = letter_id(payload)
    if expected is None:
        assert ident.startswith("payload-")
        assert ident == letter_id(json.loads(json.dumps(payload)))
    else:
        assert ident == expected


def test_entries_keep_payload_error_and_attempts_in_failure_order(letters: DeadLetters) -> None:
    letters.add({"batch_id": "b-2", "agent": "a"}, ValueError("bad field"), attempts=1)
    letters.add({"batch_id": "b-1", "agent": "a"}, RuntimeError("store down"), 9, "task-1")

    listed = letters.list()
    assert [letter.id for letter in listed] == ["b-2", "b-1"]
    first = letters.get("b-1")
    assert first is not None
    assert (first.payload, first.error_type, first.error, first.attempts, first.task_id) == (
        {"batch_id": "b-1", "agent": "a"}, "RuntimeError", "store down", 9, "task-1"
    )
    assert letters.get("missing") is None


def test_a_batch_failing_again_replaces_its_entry(letters: DeadLetters) -> None:
    letters.add({"batch_id": "b-1", "agent": "a"}, ValueError("first"), 1)
    letters.add({"batch_id": "b-1", "agent": "a"}, ValueError("second"), 3)
    assert len(letters) == 1
    again = letters.get("b-1")
    assert again is not None and (again.error, again.attempts) == ("second", 3)


def test_replay_publishes_then_removes(letters: DeadLetters) -> None:
    published: list[Any] = []
    for n in range(3):
        letters.add({"batch_id": f"b-{n}", "agent": "a"}, ValueError("x"), 1)

    assert letters.replay("b-1", published.append)
    assert not letters.replay("b-1", published.append)
    assert letters.ids() == ["b-0", "b-2"]
    assert letters.replay_all(published.append) == 2
    assert [p["batch_id"] for p in published] == ["b-1", "b-0", "b-2"]
    assert len(letters) == 0


def test_replay_keeps_the_entry_when_publishing_fails(letters: DeadLetters) -> None:
    letters.add({"batch_id": "b-1", "agent": "a"}, ValueError("x"), 1)

    def broken(_: Any) -> None:
        raise redis.ConnectionError("broker gone")

    with pytest.raises(redis.ConnectionError):
        letters.replay("b-1", broken)
    assert letters.ids() == ["b-1"]


def test_purge_empties_the_list(letters: DeadLetters) -> None:
    for n in range(4):
        letters.add({"batch_id": f"b-{n}", "agent": "a"}, ValueError("x"), 1)
    assert letters.purge() == 4
    assert letters.list() == [] and len(letters) == 0
