"""CallBucket writes of the embedded store.

Rows reach LadybugDB as arrow columns built straight from the merged
`CallBucket` objects (no per-row dicts). One read finds which keys exist; new
keys are created (COPY for large sets), existing ones are updated in the
database by adding the incoming counters, one statement per set of rows that
change the same columns: a bucket update usually touches 3-6 of the 35 counter
columns, and every column a statement writes costs, changed or not. Exemplars
(union, at most MAX_EXEMPLARS) and naming (overwritten when given) are set
only where they change. Everything runs in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import ladybug
import pyarrow as pa
import pyarrow.compute as pc

from topology.model import MAX_EXEMPLARS, CallBucket
from topology.store import ladybug_schema as q
from topology.store.tiers import SERIES

_STRING = pa.string()
_INT = pa.int64()
_FLOAT = pa.float64()
_EXEMPLARS = pa.list_(pa.string())


def table(buckets: Sequence[CallBucket], keys: Sequence[str]) -> pa.Table:
    """The BUCKET_COLUMNS table of the buckets (keys given: computed once by the caller)."""
    hist = _transposed([b.histogram for b in buckets], len(q.HIST))
    status = _transposed([b.status_classes for b in buckets], len(q.STATUS))
    ids, series = SERIES.known_ids, SERIES.add
    columns = [
        pa.array(keys, _STRING),
        pa.array([b.client for b in buckets], _STRING),
        pa.array([b.server for b in buckets], _STRING),
        pa.array([b.width for b in buckets], _INT),
        pa.array([b.bucket for b in buckets], _INT),
        pa.array([b.protocol for b in buckets], _STRING),
        pa.array([b.method for b in buckets], _STRING),
        pa.array([b.path for b in buckets], _STRING),
        pa.array([b.requests for b in buckets], _INT),
        pa.array([b.errors for b in buckets], _INT),
        pa.array([b.latency_sum_ms for b in buckets], _FLOAT),
        *(pa.array(values, _INT) for values in hist),
        *(pa.array(values, _INT) for values in status),
        pa.array([b.exemplars for b in buckets], _EXEMPLARS),
        pa.array([b.naming for b in buckets], _STRING),
        pa.array([ids.get(names) or series(*names) for names in (
            (b.client, b.server, b.protocol, b.path) for b in buckets)], _INT),
    ]
    return pa.Table.from_arrays(columns, schema=q.BUCKET_COLUMNS)


def _counters(buckets: Sequence[CallBucket]) -> dict[str, pa.Array]:
    """The BUCKET_ADDED columns of the buckets."""
    hist = _transposed([b.histogram for b in buckets], len(q.HIST))
    status = _transposed([b.status_classes for b in buckets], len(q.STATUS))
    return {
        "requests": pa.array([b.requests for b in buckets], _INT),
        "errors": pa.array([b.errors for b in buckets], _INT),
        "latency_sum": pa.array([b.latency_sum_ms for b in buckets], _FLOAT),
        **{name: pa.array(values, _INT) for name, values in zip(q.HIST, hist, strict=True)},
        **{name: pa.array(values, _INT) for name, values in zip(q.STATUS, status, strict=True)},
    }


def _transposed(lists: list[list[int]], width: int) -> list[list[int]]:
    """Columns of equally long lists: slices of one flat list (several times faster
    than zip(*lists) for thousands of rows)."""
    if lists and set(map(len, lists)) != {width}:
        raise ValueError(f"bucket counters must have {width} items each")
    flat = list(chain.from_iterable(lists))
    return [flat[j::width] for j in range(width)]


def upsert(conn: ladybug.Connection, buckets: Sequence[CallBucket], keys: Sequence[str]
           ) -> None:
    """Create the buckets whose key is new, add the others into the stored rows.
    Keys (`bucket.key`, computed once by the caller) must be distinct
    (`rows.merge_buckets`)."""
    if not buckets:
        return
    probe = pa.table({
        "i": pa.array(range(len(buckets)), _INT), "key": pa.array(keys, _STRING),
        "naming": pa.array([b.naming for b in buckets], _STRING),
        "nex": pa.array([len(b.exemplars) for b in buckets], _INT),
    })
    found = conn.execute(q.BUCKETS_EXISTING, {"rows": probe}).get_as_arrow(0)
    stored = found.column("i").to_pylist()
    if len(stored) < len(buckets):
        known = set(stored)
        new = [i for i in range(len(buckets)) if i not in known]
        created = table([buckets[i] for i in new], [keys[i] for i in new])
        text = q.BUCKETS_COPY if created.num_rows >= q.COPY_MIN_ROWS else q.BUCKETS_CREATE
        conn.execute(text, {"rows": created})
    if stored:
        updated = [buckets[i] for i in stored]
        updated_keys = [keys[i] for i in stored]
        _add_counters(conn, updated, updated_keys)
        _set_changed(conn, updated, updated_keys, found.column("same_naming").to_pylist(),
                     found.column("exemplars").to_pylist())


def _add_counters(conn: ladybug.Connection, buckets: list[CallBucket], keys: list[str]) -> None:
    """One additive SET per group of columns that are non-zero on the same rows."""
    counters = _counters(buckets)
    key_column = pa.array(keys, _STRING)
    groups: dict[bytes, tuple[pa.Array, list[str]]] = {}
    for name in q.BUCKET_ADDED:
        mask = pc.not_equal(counters[name], 0)
        if not mask.true_count:
            continue
        signature = mask.buffers()[1].to_pybytes() + mask.offset.to_bytes(8, "big")
        groups.setdefault(signature, (mask, []))[1].append(name)
    for mask, names in groups.values():
        rows = pa.table({"key": key_column, **{name: counters[name] for name in names}})
        if mask.true_count < len(mask):
            rows = rows.filter(mask)
        conn.execute(q.buckets_add(tuple(names)), {"rows": rows})


def _set_changed(
    conn: ladybug.Connection, buckets: list[CallBucket], keys: list[str],
    same_naming: list[bool], stored_exemplars: list[list[str] | None],
) -> None:
    renamed: list[tuple[str, str]] = []
    exemplars: list[tuple[str, list[str]]] = []
    for bucket, key, same, old in zip(buckets, keys, same_naming, stored_exemplars, strict=True):
        if bucket.naming and not same:
            renamed.append((key, bucket.naming))
        if old is not None:
            union = list(old)
            for trace_id in bucket.exemplars:
                if len(union) >= MAX_EXEMPLARS:
                    break
                if trace_id not in union:
                    union.append(trace_id)
            if len(union) != len(old):
                exemplars.append((key, union))
    if renamed:
        names, values = zip(*renamed, strict=True)
        conn.execute(q.buckets_set(("naming",)), {"rows": pa.table(
            {"key": pa.array(names, _STRING), "naming": pa.array(values, _STRING)})})
    if exemplars:
        names, values = zip(*exemplars, strict=True)
        conn.execute(q.buckets_set(("exemplars",)), {"rows": pa.table(
            {"key": pa.array(names, _STRING), "exemplars": pa.array(values, _EXEMPLARS)})})


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
