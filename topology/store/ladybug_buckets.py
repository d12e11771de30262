"""CallBucket writes of the embedded store.

Rows reach LadybugDB as columns built straight from the merged `CallBucket`
objects (no per-row dicts), through the writer's rows file (ladybug_rows.py).
One read finds which keys exist; new keys are created (COPY for large sets),
existing ones are updated in the database by adding the incoming counters, one
statement per set of rows that change the same columns: a bucket update usually
touches 3-6 of the 35 counter columns, and every column a statement writes
costs, changed or not. Exemplars (union, at most MAX_EXEMPLARS) and naming
(overwritten when given) are set only where they change. Everything runs in the
caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain, compress
from typing import Any

from topology.model import MAX_EXEMPLARS, CallBucket
from topology.store import ladybug_schema as q
from topology.store.base import StoreError
from topology.store.ladybug_ids import bucket_ids
from topology.store.ladybug_rows import Conn, Rows, Schema, pick
from topology.store.tiers import SERIES

_PROBE: Schema = (("i", "INT64"), ("id", "INT64"), ("key", "STRING"), ("naming", "STRING"),
                  ("nex", "INT64"))


def table(buckets: Sequence[CallBucket], ids: Sequence[int]) -> Rows:
    """The BUCKET_COLUMNS rows of the buckets (ids given: computed once by the caller)."""
    sids, series = SERIES.known_ids, SERIES.add
    return Rows(q.BUCKET_COLUMNS, {
        "id": ids,
        "client": [b.client for b in buckets],
        "server": [b.server for b in buckets],
        "width": [b.width for b in buckets],
        "bucket": [b.bucket for b in buckets],
        "protocol": [b.protocol for b in buckets],
        "method": [b.method for b in buckets],
        "path": [b.path for b in buckets],
        **_counters(buckets),
        "exemplars": [b.exemplars for b in buckets],
        "naming": [b.naming for b in buckets],
        "sid": [sids.get(names) or series(*names) for names in (
            (b.client, b.server, b.protocol, b.path) for b in buckets)],
    })


def _counters(buckets: Sequence[CallBucket]) -> dict[str, list[Any]]:
    """The BUCKET_ADDED columns of the buckets, as lists."""
    hist = _transposed([b.histogram for b in buckets], len(q.HIST))
    status = _transposed([b.status_classes for b in buckets], len(q.STATUS))
    return {
        "requests": [b.requests for b in buckets],
        "errors": [b.errors for b in buckets],
        "latency_sum": [b.latency_sum_ms for b in buckets],
        **dict(zip(q.HIST, hist, strict=True)),
        **dict(zip(q.STATUS, status, strict=True)),
    }


def _transposed(lists: list[list[int]], width: int) -> list[list[int]]:
    """Columns of equally long lists: slices of one flat list (several times faster
    than zip(*lists) for thousands of rows)."""
    if lists and set(map(len, lists)) != {width}:
        raise ValueError(f"bucket counters must have {width} items each")
    flat = list(chain.from_iterable(lists))
    return [flat[j::width] for j in range(width)]


def upsert(conn: Conn, buckets: Sequence[CallBucket], keys: Sequence[str]
           ) -> int:
    """Create the buckets whose key is new, add the others into the stored rows; the
    number created. Keys (`bucket.key`, computed once by the caller) must be distinct
    (`rows.merge_buckets`)."""
    if not buckets:
        return 0
    ids = bucket_ids(keys, [b.bucket for b in buckets])
    if len(set(ids)) < len(ids):
        _collision([k for k, n in zip(keys, ids, strict=True) if ids.count(n) > 1])
    probe = Rows(_PROBE, {
        "i": range(len(buckets)), "id": ids, "key": keys,
        "naming": [b.naming for b in buckets], "nex": [len(b.exemplars) for b in buckets],
    })
    found = conn.execute(q.BUCKETS_EXISTING, {"rows": probe}).get_all()
    stored: list[int] = [row[0] for row in found]
    same = [row[1] for row in found]
    if not all(same):
        _collision([keys[i] for i, ok in zip(stored, same, strict=True) if not ok])
    created = len(buckets) - len(stored)
    if created:
        known = set(stored)
        new = [i for i in range(len(buckets)) if i not in known]
        rows = table([buckets[i] for i in new], [ids[i] for i in new])
        text = q.BUCKETS_COPY if created >= q.COPY_MIN_ROWS else q.BUCKETS_CREATE
        conn.execute(text, {"rows": rows})
    if stored:
        updated = [buckets[i] for i in stored]
        updated_ids = [ids[i] for i in stored]
        _add_counters(conn, updated, updated_ids)
        _set_changed(conn, updated, updated_ids, [row[2] for row in found],
                     [row[3] for row in found])
    return created


def _collision(keys: list[str]) -> None:
    raise StoreError(
        f"bucket key {keys[0]!r} has the same id as another bucket key (CallBucket ids "
        "are 64 bits made from the key and its start, `ladybug_ids`): refusing the write "
        "rather than adding the two buckets up")


# Cost model of one additive SET statement, measured on LadybugDB 0.22 (2 cores):
# a fixed cost (mostly preparing the statement: a `LOAD FROM $rows` statement is
# prepared anew for every table), a cost per row found by id, and one per column
# written on each row. Groups of columns are merged into one statement while that
# is cheaper by this model: the benchmark's 1,000-row updates then send one, not ~20.
STATEMENT_COST = 2000.0  # microseconds
ROW_COST = 4.0
CELL_COST = 3.0


def _cost(rows: int, columns: int) -> float:
    return STATEMENT_COST + rows * (ROW_COST + CELL_COST * columns)


def _add_counters(conn: Conn, buckets: list[CallBucket], ids: list[int]) -> None:
    """Additive SETs: the rows where a column is non-zero get it added; columns
    non-zero on the same rows share a statement, and statements are merged while
    the cost model says a merged one (every column on the union of rows) is cheaper.

    Rows are sets of bits of a Python int (unions and counts of thousands of
    rows in microseconds), made and read with bytes operations that run in C:
    no pyarrow.compute, whose import alone is about 10 MB of the worker's RSS.
    """
    counters = _counters(buckets)
    count = len(ids)
    groups: dict[int, list[str]] = {}
    for name in q.BUCKET_ADDED:
        bits = _bits(bytes(map(bool, counters[name])))
        if bits:
            groups.setdefault(bits, []).append(name)
    plans: list[tuple[int, list[str]]] = []
    for bits, names in sorted(groups.items(), key=lambda g: -g[0].bit_count()):
        best, saving = -1, 0.0
        for j, (other, other_names) in enumerate(plans):
            merged = _cost((bits | other).bit_count(), len(names) + len(other_names))
            apart = (_cost(bits.bit_count(), len(names))
                     + _cost(other.bit_count(), len(other_names)))
            if apart - merged > saving:
                best, saving = j, apart - merged
        if best < 0:
            plans.append((bits, list(names)))
        else:
            other, other_names = plans[best]
            plans[best] = (bits | other, other_names + names)
    for bits, names in plans:
        if bits.bit_count() == count:
            columns = {"id": ids, **{name: counters[name] for name in names}}
        else:
            flags = _flags(bits, count)
            columns = {"id": list(compress(ids, flags)),
                       **{name: list(compress(counters[name], flags)) for name in names}}
        rows = Rows(pick(q.BUCKET_COLUMNS, list(columns)), columns)
        conn.execute(q.buckets_add(tuple(names)), {"rows": rows})


_AS_DIGITS = bytes.maketrans(b"\x00\x01", b"01")
_AS_FLAGS = bytes.maketrans(b"01", b"\x00\x01")


def _bits(flags: bytes) -> int:
    """Flags (one byte per row, 0 or 1) as an int whose bit i is row i."""
    return int(flags.translate(_AS_DIGITS)[::-1] or b"0", 2)


def _flags(bits: int, count: int) -> bytes:
    """The `count` rows of `bits` as flags, one byte per row (`_bits` undone)."""
    digits = format(bits, "b") if bits else ""
    return digits.zfill(count).encode()[::-1].translate(_AS_FLAGS)


def _set_changed(
    conn: Conn, buckets: list[CallBucket], ids: list[int],
    same_naming: list[bool], stored_exemplars: list[list[str] | None],
) -> None:
    renamed: list[tuple[int, str]] = []
    exemplars: list[tuple[int, list[str]]] = []
    for bucket, id_, same, old in zip(buckets, ids, same_naming, stored_exemplars, strict=True):
        if bucket.naming and not same:
            renamed.append((id_, bucket.naming))
        if old is not None:
            union = list(old)
            for trace_id in bucket.exemplars:
                if len(union) >= MAX_EXEMPLARS:
                    break
                if trace_id not in union:
                    union.append(trace_id)
            if len(union) != len(old):
                exemplars.append((id_, union))
    if renamed:
        names, values = zip(*renamed, strict=True)
        conn.execute(q.buckets_set(("naming",)), {"rows": Rows(
            pick(q.BUCKET_COLUMNS, ("id", "naming")), {"id": names, "naming": values})})
    if exemplars:
        names, values = zip(*exemplars, strict=True)
        conn.execute(q.buckets_set(("exemplars",)), {"rows": Rows(
            pick(q.BUCKET_COLUMNS, ("id", "exemplars")), {"id": names, "exemplars": values})})


def from_rows(rows: Sequence[dict], width: int) -> list[CallBucket]:
    """CallBucket objects of stored rows (BUCKET_COLUMNS names), moved to buckets of
    `width` (start floored): the hourly roll-up merges them by key."""
    return [
        CallBucket(
            r["client"], r["server"], r["bucket"] - r["bucket"] % width, width, r["protocol"],
            r["method"], r["path"], r["requests"], r["errors"], r["latency_sum"],
            [r[name] for name in q.HIST], [r[name] for name in q.STATUS],
            list(r["exemplars"] or []), r["naming"],
        )
        for r in rows
    ]
