"""Service and CALLS pair writes of the embedded store.

A pair's bounds, protocols and naming live in its CallPair node (found by id, a
hash of client and server); its CALLS relationship is created with it, once.

Same semantics as `rows.add_service_rows` / `rows.add_pair_rows` (the Neo4j
store's). The store remembers what it knows is stored (`Known`: every service
and pair it read or wrote), so a batch whose services and pairs were all seen
before needs no read at all: only what changes is written, and a pair only in
the fields that change (usually `last_seen`). What `Known` holds is exact
because this process is the file's only writer (LadybugDB's file lock), every
write runs under the store's write lock, and the store clears it whenever a
write transaction fails (its changes may not have been committed) and after
retention deletes services or pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from topology.model import CallBucket, Service
from topology.store import ladybug_schema as q
from topology.store import rows
from topology.store.base import StoreError
from topology.store.ladybug_rows import Conn, Rows, Schema, names, pick, records

ServiceState = tuple[str, str, str, str, tuple[str, ...], int, int]
PairState = tuple[int, int, frozenset[str], str]  # first, last, protocols, naming
_IDS: Schema = (("id", "INT64"),)

SERVICES_STORED = (
    "LOAD FROM $rows MATCH (s:Service {id: id}) RETURN s.id AS id, s.name AS name, "
    "s.namespace AS namespace, s.cluster AS cluster, s.kind AS kind, s.labels AS labels, "
    "s.first_seen AS first_seen, s.last_seen AS last_seen"
)
PAIRS_STORED = (
    "LOAD FROM $rows MATCH (p:CallPair {id: id}) RETURN p.id AS id, p.client AS client, "
    "p.server AS server, p.first_seen AS first_seen, p.last_seen AS last_seen, "
    "p.protocols AS protocols, p.naming AS naming"
)


class Known:
    """Stored services and pairs as this process last read or wrote them."""

    def __init__(self) -> None:
        self.services: dict[str, ServiceState] = {}
        self.pairs: dict[tuple[str, str], PairState] = {}
        # CallPair ids (`ladybug_schema.pair_ids`) of the pairs looked up or written
        self.pair_ids: dict[tuple[str, str], int] = {}
        # per service id: the labels mapping last seen and its stored form (saves
        # sorting and formatting the labels of every service of every batch)
        self.labels: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {}

    def clear(self) -> None:
        self.services.clear()
        self.pairs.clear()
        self.pair_ids.clear()
        self.labels.clear()

    def labels_of(self, service: Service) -> tuple[str, ...]:
        cached = self.labels.get(service.id)
        if cached is not None and cached[0] == service.labels:
            return cached[1]
        stored = tuple(rows.labels_list(service.labels))
        self.labels[service.id] = (dict(service.labels), stored)
        return stored


def _service_state(row: Mapping) -> ServiceState:
    return (row["name"], row["namespace"], row["cluster"], row["kind"],
            tuple(row["labels"] or ()), row["first_seen"], row["last_seen"])


def _states_table(states: Mapping[str, ServiceState]) -> Rows:
    ids = list(states)
    values = list(zip(*states.values(), strict=True))
    return Rows(q.SERVICE_COLUMNS, {"id": ids, **{name: list(column) for name, column in zip(
        names(q.SERVICE_COLUMNS)[1:], values, strict=True)}})


def unsettled(services: list[Service], known: Known) -> list[Service]:
    """The mentions of the services a batch may change: every mention of an id, unless
    all of its mentions describe it as stored (same fields and labels, seen inside the
    stored first..last), in which case writing would change nothing. Checked without
    building a state per mention: batches mention the same services over and over."""
    stored, labels = known.services, known.labels
    changed: set[str] = set()
    for s in services:
        old = stored.get(s.id)
        if (old is None or not old[5] <= s.seen <= old[6] or s.name != old[0]
                or s.namespace != old[1] or s.cluster != old[2] or s.kind != old[3]):
            changed.add(s.id)
            continue
        cached = labels.get(s.id)
        if cached is None or cached[1] != old[4] or cached[0] != s.labels:
            changed.add(s.id)
    return [s for s in services if s.id in changed] if changed else []


def service_states(services: Iterable[Service], known: Known) -> dict[str, ServiceState]:
    """One state per service id, what `rows.merge_services` computes: the latest
    mention (by seen; of equal ones, the later) describes it, seen range min..max."""
    latest: dict[str, list] = {}
    for service in services:
        found = latest.get(service.id)
        if found is None:
            latest[service.id] = [service, service.seen, service.seen]
            continue
        if service.seen >= found[0].seen:
            found[0] = service
        if service.seen < found[1]:
            found[1] = service.seen
        if service.seen > found[2]:
            found[2] = service.seen
    return {sid: (s.name, s.namespace, s.cluster, s.kind, known.labels_of(s), first, last)
            for sid, (s, first, last) in latest.items()}


def upsert_services(conn: Conn, incoming: Mapping[str, ServiceState],
                    known: Known) -> int:
    """Create new services; rewrite the ones whose description or seen range changes.
    The number created."""
    if not incoming:
        return 0
    missing = [sid for sid in incoming if sid not in known.services]
    if missing:
        table = _states_table({sid: incoming[sid] for sid in missing})
        for row in records(conn.execute(SERVICES_STORED, {"rows": table})):
            known.services[row["id"]] = _service_state(row)
    created: dict[str, ServiceState] = {}
    updated: dict[str, ServiceState] = {}
    for sid, state in incoming.items():
        old = known.services.get(sid)
        if old is None:
            created[sid] = known.services[sid] = state
            continue
        if state[5] > old[5] or state[6] < old[6]:
            state = (*state[:5], min(old[5], state[5]), max(old[6], state[6]))
        if state != old:
            updated[sid] = known.services[sid] = state
    for text, states in ((q.SERVICES_CREATE, created), (q.SERVICES_UPDATE, updated)):
        if states:
            conn.execute(text, {"rows": _states_table(states)})
    return len(created)


def pairs(buckets: Iterable[CallBucket]) -> dict[tuple[str, str], list]:
    """Per (client, server): [first_seen, last_seen, protocols, naming] from the
    buckets' bounds (what `rows.pair_rows` computes, without a dict per bucket, and
    unordered: the embedded store has no lock order to keep)."""
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
    return found


def upsert_pairs(conn: Conn, incoming: Mapping[tuple[str, str], list],
                 known: Known) -> int:
    """Create new pairs; set only the changed fields of the others (by CallPair id).
    The number created."""
    if not incoming:
        return 0
    ids = known.pair_ids
    missing = [key for key in incoming if key not in known.pairs]
    if missing:
        _read_stored(conn, missing, known)
    created: dict[str, list] = {name: [] for name in names(q.PAIR_COLUMNS)}
    creating: dict[int, tuple[tuple[str, str], PairState]] = {}  # by CallPair id
    groups: dict[tuple[str, ...], dict[str, list]] = {}
    stored = known.pairs
    later_ids: list[int] = []  # the usual case: only last_seen grows
    later_seen: list[int] = []
    for pair, (first, last, protocols, naming) in incoming.items():
        old = stored.get(pair)
        if (old is not None and first >= old[0] and protocols <= old[2]
                and (not naming or naming == old[3])):
            if last > old[1]:
                later_ids.append(ids[pair])
                later_seen.append(last)
                stored[pair] = (old[0], last, old[2], old[3])
            continue
        if old is None:
            for name, value in zip(names(q.PAIR_COLUMNS), (
                    ids[pair], *pair, first, last, sorted(protocols), naming), strict=True):
                created[name].append(value)
            creating[ids[pair]] = (pair, (first, last, frozenset(protocols), naming))
            continue  # remembered once created: CREATE skips a pair whose ends are missing
        changed: dict[str, object] = {}
        if first < old[0]:
            changed["first_seen"] = first
        if last > old[1]:
            changed["last_seen"] = last
        if not protocols <= old[2]:
            changed["protocols"] = sorted(old[2] | protocols)
        if naming and naming != old[3]:
            changed["naming"] = naming
        if not changed:
            continue
        stored[pair] = (
            min(first, old[0]), max(last, old[1]), old[2] | protocols, naming or old[3])
        group = groups.setdefault(tuple(changed), {"id": []})
        group["id"].append(ids[pair])
        for name, value in changed.items():
            group.setdefault(name, []).append(value)
    if later_ids:
        group = groups.setdefault(("last_seen",), {"id": [], "last_seen": []})
        group["id"].extend(later_ids)
        group["last_seen"].extend(later_seen)
    made: list = []
    if created["id"]:
        made = conn.execute(q.PAIRS_CREATE, {"rows": Rows(q.PAIR_COLUMNS, created)}).get_all()
        # the next write then needs no read of them (10,000 new pairs: about 0.15 s)
        for (pid,) in made:
            pair, state = creating[pid]
            stored[pair] = state
    for fields, data in groups.items():
        schema = pick(q.PAIR_COLUMNS, ("id", *fields))
        conn.execute(q.pairs_update(fields), {"rows": Rows(schema, data)})
    return len(made)


def _read_stored(conn: Conn, missing: list[tuple[str, str]], known: Known) -> None:
    """Remember the stored state (and id) of pairs not known yet. A stored CallPair
    of another (client, server) with the same id (odds about n^2/2^64) refuses the
    write rather than mixing the two pairs' bounds."""
    new_ids = q.pair_ids(missing)
    known.pair_ids.update(zip(missing, new_ids, strict=True))
    found = records(conn.execute(PAIRS_STORED, {"rows": Rows(_IDS, {"id": new_ids})}))
    if not found:
        return
    wanted = dict(zip(new_ids, missing, strict=True))
    for row in found:
        pair = (row["client"], row["server"])
        if wanted[row["id"]] != pair:
            raise StoreError(
                f"pair {wanted[row['id']]!r} has the same 63-bit id as the stored pair "
                f"{pair!r} (CallPair ids hash client and server): refusing the write "
                "rather than mixing their bounds")
        known.pairs[pair] = (row["first_seen"], row["last_seen"],
                             frozenset(row["protocols"] or ()), row["naming"])
