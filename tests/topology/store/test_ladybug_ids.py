"""CallBucket ids placed for LadybugDB's hash index (`ladybug_ids`), checked against
LadybugDB's own `hash()`: the function its primary key index hashes an INT64 with."""

from __future__ import annotations

import ladybug
import pytest

from topology.store import ladybug_ids

T0 = 1_700_000_000 - 1_700_000_000 % 3600


def key(i: int, start: int = T0) -> str:
    """A bucket key (`CallBucket.key`): its start is part of it."""
    return (f"k8s:prod/shop/Deployment/svc{i}|external:api{i % 7}.example.com|60|{start}|http|"
            f"GET|/items/{{id}}/{i}")


KEYS = [key(i) for i in range(2_000)]


@pytest.fixture(scope="module")
def ladybug_hash():
    """hash() of a list of INT64s by a real LadybugDB, as unsigned 64-bit words."""
    db = ladybug.Database(":memory:")
    conn = ladybug.Connection(db)

    def hashed(values: list[int]) -> list[int]:
        rows = conn.execute("UNWIND $values AS v RETURN hash(CAST(v AS INT64))",
                            {"values": values}).get_all()
        return [row[0] % (1 << 64) for row in rows]

    yield hashed
    conn.close()
    db.close()


@pytest.mark.parametrize("start", [T0, T0 + 60, T0 + 3600, T0 + 60 * 4096, 0, 59])
def test_every_id_of_a_start_hashes_to_that_start_s_slot_class(ladybug_hash, start) -> None:
    ids = ladybug_ids.bucket_ids([key(i, start) for i in range(2_000)], [start] * 2_000)
    wanted = start // ladybug_ids.CLASS_SECONDS & ladybug_ids.CLASS_MASK
    assert {h & ladybug_ids.CLASS_MASK for h in ladybug_hash(ids)} == {wanted}


def test_the_index_sees_the_placed_hash_and_spreads_keys_over_its_sub_indexes(
    ladybug_hash,
) -> None:
    ids = ladybug_ids.bucket_ids(KEYS, [T0] * len(KEYS))
    assert ladybug_hash(ids) == [ladybug_ids.placed_hash(k, T0) for k in KEYS]
    assert [ladybug_ids.murmurhash64(i) for i in ids] == ladybug_hash(ids)
    sub_indexes = {h >> 56 for h in ladybug_hash(ids)}  # LadybugDB's 256, by the top 8 bits
    assert len(sub_indexes) > 240


@pytest.mark.parametrize("keys, starts", [
    (KEYS, [T0] * len(KEYS)),  # one start, distinct keys
    ([key(0, t) for t in (T0, T0 + 60, T0 + 120)], [T0, T0 + 60, T0 + 120]),  # starts
    ([key(0, t) for t in (T0, T0 + 60 * 4096)], [T0, T0 + 60 * 4096]),  # same slot class
], ids=["keys", "starts", "wrapped_class"])
def test_ids_are_distinct_int64s_and_the_same_every_time(keys, starts) -> None:
    ids = ladybug_ids.bucket_ids(keys, starts)
    assert len(set(ids)) == len(ids)
    assert all(-(1 << 63) <= i < (1 << 63) for i in ids)
    assert ladybug_ids.bucket_ids(keys, starts) == ids
    assert [ladybug_ids.unhash(ladybug_ids.placed_hash(k, s))
            for k, s in zip(keys, starts, strict=True)] == ids


def test_keys_and_starts_must_pair_up() -> None:
    with pytest.raises(ValueError):
        ladybug_ids.bucket_ids(KEYS[:2], [T0])
