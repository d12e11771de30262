"""Service and CALLS pair writes of the embedded store.

Same semantics as `rows.add_service_rows` / `rows.add_pair_rows` (the Neo4j
store's), with the comparisons done in the database: the existence reads return
the incoming row's index, integers and booleans (whether the stored names,
labels, protocols and naming already match), which cost far less to fetch than
the stored strings and lists. Only rows that change are written, and a pair
only in the fields that change (usually `last_seen` alone). Everything runs in
the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import ladybug
import pyarrow as pa

from topology.model import CallBucket
from topology.store import ladybug_schema as q

_STRING = pa.string()
_INT = pa.int64()
_STRINGS = pa.list_(pa.string())

SERVICES_EXISTING = (
    "LOAD FROM $rows MATCH (s:Service {id: id}) RETURN i, "
    "s.name = name AND s.namespace = namespace AND s.cluster = cluster AND s.kind = kind "
    "AND s.labels = labels AS same, s.first_seen AS first_seen, s.last_seen AS last_seen"
)
PAIRS_EXISTING = (
    "LOAD FROM $rows MATCH (a:Service {id: client})-[r:CALLS]->(b:Service {id: server}) "
    "RETURN i, r.first_seen AS first_seen, r.last_seen AS last_seen, "
    "r.naming = naming AS same_naming, "
    "CASE WHEN list_has_all(r.protocols, protocols) THEN NULL ELSE r.protocols END "
    "AS protocols"
)


def _table(columns: Mapping[str, list], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays(
        [pa.array(columns[f.name], f.type) for f in schema], schema=schema)


def _indexed(columns: Mapping[str, list], schema: pa.Schema) -> pa.Table:
    count = len(next(iter(columns.values())))
    table = _table(columns, schema)
    return table.append_column("i", pa.array(range(count), _INT))


def upsert_services(conn: ladybug.Connection, incoming: Mapping[str, dict]) -> None:
    """Create new services; rewrite the ones whose description or seen range changes."""
    if not incoming:
        return
    data = list(incoming.values())
    columns = {name: [row[name] for row in data] for name in q.SERVICE_COLUMNS.names}
    found = conn.execute(SERVICES_EXISTING, {
        "rows": _indexed(columns, q.SERVICE_COLUMNS)}).get_as_arrow(0).to_pydict()
    stored = set(found["i"])
    created = [row for i, row in enumerate(data) if i not in stored]
    updated = []
    for i, same, first, last in zip(found["i"], found["same"], found["first_seen"],
                                    found["last_seen"], strict=True):
        row = data[i]
        if same and first <= row["first_seen"] and last >= row["last_seen"]:
            continue
        updated.append({**row, "first_seen": min(first, row["first_seen"]),
                        "last_seen": max(last, row["last_seen"])})
    for text, rows in ((q.SERVICES_CREATE, created), (q.SERVICES_UPDATE, updated)):
        if rows:
            conn.execute(text, {"rows": _table(
                {name: [row[name] for row in rows] for name in q.SERVICE_COLUMNS.names},
                q.SERVICE_COLUMNS)})


def pairs(buckets: Iterable[CallBucket]) -> dict[tuple[str, str], list]:
    """Per (client, server), sorted: [first_seen, last_seen, protocols, naming] from
    the buckets' bounds (what `rows.pair_rows` computes, without a dict per bucket)."""
    found: dict[tuple[str, str], list] = {}
    for bucket in buckets:
        key = (bucket.client, bucket.server)
        end = bucket.bucket + bucket.width
        known = found.get(key)
        if known is None:
            found[key] = [bucket.bucket, end, {bucket.protocol}, bucket.naming]
            continue
        if bucket.bucket < known[0]:
            known[0] = bucket.bucket
        if end > known[1]:
            known[1] = end
        known[2].add(bucket.protocol)
        if bucket.naming:
            known[3] = bucket.naming
    return dict(sorted(found.items()))


def upsert_pairs(conn: ladybug.Connection, incoming: Mapping[tuple[str, str], list]) -> None:
    """Create new pairs; set only the changed fields of the others."""
    if not incoming:
        return
    keys = list(incoming)
    values = list(incoming.values())
    columns = {
        "client": [k[0] for k in keys], "server": [k[1] for k in keys],
        "first_seen": [v[0] for v in values], "last_seen": [v[1] for v in values],
        "protocols": [list(v[2]) if len(v[2]) == 1 else sorted(v[2]) for v in values],
        "naming": [v[3] for v in values],
    }
    found = conn.execute(PAIRS_EXISTING, {
        "rows": _indexed(columns, q.PAIR_COLUMNS)}).get_as_arrow(0).to_pydict()
    stored = set(found["i"])
    if len(stored) < len(keys):
        new = [i for i in range(len(keys)) if i not in stored]
        conn.execute(q.PAIRS_CREATE, {"rows": _table(
            {name: [column[i] for i in new] for name, column in columns.items()},
            q.PAIR_COLUMNS)})
    groups: dict[tuple[str, ...], dict[str, list]] = {}
    for i, first, last, same_naming, protocols in zip(
            found["i"], found["first_seen"], found["last_seen"], found["same_naming"],
            found["protocols"], strict=True):
        changed = {}
        if columns["first_seen"][i] < first:
            changed["first_seen"] = columns["first_seen"][i]
        if columns["last_seen"][i] > last:
            changed["last_seen"] = columns["last_seen"][i]
        if protocols is not None:
            changed["protocols"] = sorted(set(protocols) | set(columns["protocols"][i]))
        if columns["naming"][i] and not same_naming:
            changed["naming"] = columns["naming"][i]
        if changed:
            group = groups.setdefault(tuple(changed), {"client": [], "server": []})
            group["client"].append(keys[i][0])
            group["server"].append(keys[i][1])
            for name, value in changed.items():
                group.setdefault(name, []).append(value)
    for fields, data in groups.items():
        schema = pa.schema([q.PAIR_COLUMNS.field(n) for n in ("client", "server", *fields)])
        conn.execute(q.pairs_update(fields), {"rows": _table(data, schema)})

