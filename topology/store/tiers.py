"""Pre-aggregated traffic tiers of the embedded store: CallTier rows.

A tier row sums the finest buckets (minutes) of one series (client, server,
protocol, method, path, naming) whose start lies in one block of a tier width
(5 and 30 minutes). Queries over a window read whole blocks from the tiers and
only the minutes at the window's edges (`queries/tiering.py`), so an unaligned
last hour reads about 10 rows per series instead of 60.

TierState holds the covered range [low, high): every finest bucket whose start
lies in it is in the tier rows of its blocks, and nothing else is.

* `roll` (the retention job) adds the buckets in [high, now) and raises high to
  the current bucket: the newest block of each width is partial, and holds
  exactly the buckets of [block start, high).
* `absorb` (the write path, before buckets are upserted) adds late data, a
  bucket in [low, high), to its tier rows; when the write renames the bucket
  (naming), its stored content moves to the rows of the new naming. Counts stay
  exact: no loss, no double count (tests/store/test_tiers.py).
* `expire` (retention) raises low past the buckets folded into hours and drops
  the tier rows below it.

Histograms are packed two bins per INT64 (31 bits each): the database then sums
13 columns instead of 26, which is most of the cost of a window query. A group
whose histogram total reaches 2^31 could carry between bins; readers check the
summed `total` and re-read such results unpacked (`UNPACKED`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from topology import histogram
from topology.model import CallBucket
from topology.store.ladybug_ids import bucket_ids
from topology.store.ladybug_rows import Conn, Rows, Schema, names

LEVELS = (300, 1800)  # tier widths, seconds; each a multiple of the previous
PACK_BITS = 31
PACK_LIMIT = 1 << PACK_BITS
PACK_MASK = PACK_LIMIT - 1
PACKED = (histogram.BIN_COUNT + 1) // 2
_STATE_ID = "tiers"

SCHEMA = (
    "CREATE NODE TABLE IF NOT EXISTS CallTier("
    "key STRING PRIMARY KEY, client STRING, server STRING, width INT64, bucket INT64, "
    "protocol STRING, method STRING, path STRING, naming STRING, nbuckets INT64, "
    "requests INT64, errors INT64, latency_sum DOUBLE, total INT64, "
    + ", ".join(f"b{i} INT64" for i in range(PACKED)) + ", sid INT64)",
    "CREATE NODE TABLE IF NOT EXISTS TierState(id STRING PRIMARY KEY, low INT64, high INT64)",
)
_SERIES = ("client", "server", "protocol", "method", "path", "naming")
COLUMNS: Schema = (
    ("key", "STRING"), ("client", "STRING"), ("server", "STRING"), ("width", "INT64"),
    ("bucket", "INT64"), ("protocol", "STRING"), ("method", "STRING"), ("path", "STRING"),
    ("naming", "STRING"), ("nbuckets", "INT64"), ("requests", "INT64"), ("errors", "INT64"),
    ("latency_sum", "DOUBLE"), ("total", "INT64"),
    *((f"b{i}", "INT64") for i in range(PACKED)),
    ("sid", "INT64"),
)
_KEYS: Schema = (("key", "STRING"),)
_IDS: Schema = (("id", "INT64"),)
_FIELDS = ", ".join(f"t.{name} AS {name}" for name in names(COLUMNS))
_SETS = ", ".join(f"t.{name} = {name}" for name in names(COLUMNS)[9:-1])
EXISTING = f"LOAD FROM $rows MATCH (t:CallTier {{key: key}}) RETURN {_FIELDS}"
CREATE = (
    "LOAD FROM $rows CREATE (:CallTier {"
    + ", ".join(f"{name}: {name}" for name in names(COLUMNS)) + "})"
)
UPDATE = f"LOAD FROM $rows MATCH (t:CallTier {{key: key}}) SET {_SETS}"
DELETE = "LOAD FROM $rows MATCH (t:CallTier {key: key}) DELETE t"
STATE = f"MATCH (t:TierState {{id: '{_STATE_ID}'}}) RETURN t.low AS low, t.high AS high"
STATE_SET = (
    f"MERGE (t:TierState {{id: '{_STATE_ID}'}}) SET t.low = $low, t.high = $high"
)
EXPIRE = "MATCH (t:CallTier) WHERE t.bucket < $low DELETE t RETURN count(*) AS n"
BUCKETS_EXISTING = (  # CallBucket is keyed by id, made from the key (ladybug_ids)
    "LOAD FROM $rows MATCH (e:CallBucket {id: id}) RETURN e.id AS id, "
    "e.client AS client, e.server AS server, e.width AS width, e.bucket AS bucket, "
    "e.protocol AS protocol, e.method AS method, e.path AS path, e.naming AS naming, "
    "e.requests AS requests, e.errors AS errors, e.latency_sum AS latency_sum, "
    + ", ".join(f"e.h{i} AS h{i}" for i in range(histogram.BIN_COUNT))
)


def _minutes_text(block: int) -> str:
    """Finest buckets in [$a, $b) summed per series and `block`-wide block."""
    hist = ", ".join(
        f"CAST(sum(e.h{i}) AS INT64) AS h{i}" for i in range(histogram.BIN_COUNT)
    )
    return (
        "MATCH (e:CallBucket) WHERE e.width < 3600 AND e.bucket >= $a AND e.bucket < $b "
        "RETURN e.client AS client, e.server AS server, e.protocol AS protocol, "
        "e.method AS method, e.path AS path, e.naming AS naming, "
        f"e.bucket - e.bucket % {int(block)} AS bucket, count(*) AS nbuckets, "
        "CAST(sum(e.requests) AS INT64) AS requests, CAST(sum(e.errors) AS INT64) AS errors, "
        f"sum(e.latency_sum) AS latency_sum, {hist}"
    )


class SeriesNames:
    """Series ids: a 63-bit hash of (client, server, protocol, path), the map's group.

    Tier rows carry it (`sid`), so a map groups tier rows by one integer instead
    of four strings (half the database's time); the names come back from this
    registry, filled whenever tier rows are written or read by name. Two series
    with one id would merge: the registry notices it and `collided` sends every
    reader back to grouping by the strings.
    """

    def __init__(self) -> None:
        self.names: dict[int, tuple[str, str, str, str]] = {}
        # ids already registered, by names (a writer's fast path; ids are never 0)
        self.known_ids: dict[tuple[str, str, str, str], int] = {}
        self.collided = False

    @staticmethod
    def id(client: str, server: str, protocol: str, path: str) -> int:
        text = "\x1f".join((client, server, protocol, path)).encode()
        return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") >> 1

    def add(self, client: str, server: str, protocol: str, path: str) -> int:
        names = (client, server, protocol, path)
        sid = self.known_ids.get(names)
        if sid is None:  # hashing costs: ids are remembered (writes add every row)
            sid = self.known_ids[names] = self.id(client, server, protocol, path)
        known = self.names.setdefault(sid, names)
        if known is not names and known != names:
            self.collided = True
        return sid


SERIES = SeriesNames()


@dataclass(frozen=True)
class TierRange:
    """Finest buckets starting in [low, high) are in the tiers of the given widths."""

    low: int
    high: int
    levels: tuple[int, ...]


def levels_for(bucket_width: int) -> tuple[int, ...]:
    """The tier widths usable over buckets of this width (multiples of it, wider)."""
    return tuple(w for w in LEVELS if w > bucket_width and w % bucket_width == 0)


def pack(hist: list[int]) -> list[int]:
    padded = list(hist) + [0] * (2 * PACKED - len(hist))
    return [padded[2 * i] | padded[2 * i + 1] << PACK_BITS for i in range(PACKED)]


def unpack(packed: Iterable[int]) -> list[int]:
    hist: list[int] = []
    for value in packed:
        hist.append(value & PACK_MASK)
        hist.append(value >> PACK_BITS)
    return hist[: histogram.BIN_COUNT]


def key(row: Mapping[str, Any], width: int, block: int) -> str:
    return "|".join((row["client"], row["server"], str(width), str(block), row["protocol"],
                     row["method"], row["path"], row["naming"]))


class Tiers:
    """The tier rows of one embedded store; every method runs inside the caller's
    write transaction (`conn`), under the store's write lock."""

    def __init__(self, bucket_width: int) -> None:
        self.bucket_width = int(bucket_width)
        self.levels = levels_for(self.bucket_width)
        self._state: tuple[int, int] | None = None
        self._read = False  # whether _state reflects the stored state (None: no state)

    # -- state ---------------------------------------------------------------

    def state(self, conn: Conn) -> tuple[int, int] | None:
        if not self._read:
            found = conn.execute(STATE).get_all()
            self._state = (found[0][0], found[0][1]) if found else None
            self._read = True
        return self._state

    def _set_state(self, conn: Conn, low: int, high: int) -> None:
        conn.execute(STATE_SET, {"low": low, "high": high})
        self._state = (low, high)
        self._read = True

    def forget(self) -> None:
        """Drop the cached state (after a rolled-back transaction)."""
        self._state = None
        self._read = False

    # -- the retention job -----------------------------------------------------

    def start(self, conn: Conn, minute_cutoff: int) -> None:
        """First run: cover from the first whole widest block after the cutoff."""
        if not self.levels or self.state(conn) is not None:
            return
        low = _align_up(minute_cutoff, self.levels[-1])
        self._set_state(conn, low, low)

    def pending(self, conn: Conn, now: int) -> bool:
        """Whether buckets that started before the current one are still to be rolled."""
        state = self.state(conn) if self.levels else None
        return state is not None and state[1] < _align_down(now, self.bucket_width)

    def roll(self, conn: Conn, now: int, chunk: int = 3600) -> int:
        """Add the buckets of [high, min(high + chunk, now)) to the tiers; the number
        of buckets added (0 when high has reached the current bucket)."""
        state = self.state(conn)
        if not self.levels or state is None:
            return 0
        low, high = state
        until = min(high + chunk, _align_down(now, self.bucket_width))
        if until <= high:
            return 0
        rows = conn.execute(_minutes_text(self.levels[0]), {"a": high, "b": until})
        parts = [_grouped(dict(zip(rows.get_column_names(), r, strict=True)))
                 for r in rows.get_all()]
        self._add(conn, parts)
        self._set_state(conn, low, until)
        return sum(part["nbuckets"] for part in parts)

    def expire(self, conn: Conn, minute_cutoff: int) -> int:
        """Raise low past the buckets the hour roll-up removed; drop tier rows below it."""
        state = self.state(conn)
        if not self.levels or state is None:
            return 0
        low = _align_up(minute_cutoff, self.levels[-1])
        if low <= state[0]:
            return 0
        deleted = conn.execute(EXPIRE, {"low": low}).get_all()[0][0]
        self._set_state(conn, low, max(low, state[1]))
        return deleted

    # -- the write path ---------------------------------------------------------

    def absorb(self, conn: Conn, incoming: Sequence[CallBucket]) -> int:
        """Add late buckets (start in [low, high)) to their tier rows; call before the
        buckets themselves are upserted. Returns the number of late buckets."""
        state = self.state(conn) if self.levels else None
        if state is None:
            return 0
        low, high = state
        late = [b for b in incoming if b.width < 3600 and low <= b.bucket < high]
        if not late:
            return 0
        ids = bucket_ids([b.key for b in late], [b.bucket for b in late])
        result = conn.execute(BUCKETS_EXISTING, {"rows": Rows(_IDS, {"id": ids})})
        names = result.get_column_names()
        stored = {r[0]: _grouped(dict(zip(names, r, strict=True))) for r in result.get_all()}
        parts = []
        for bucket, bucket_id in zip(late, ids, strict=True):
            row = _bucket_part(bucket)
            old = stored.get(bucket_id)
            naming = row["naming"] or (old["naming"] if old else row["naming"])
            if old is not None and old["naming"] != naming:
                parts.append(_part(old, sign=-1))
                parts.append(_part({**old, "naming": naming}))
            parts.append(_part({**row, "naming": naming}, buckets=0 if old else 1))
        self._add(conn, parts)
        return len(late)

    # -- arithmetic ---------------------------------------------------------------

    def _add(self, conn: Conn, parts: list[dict]) -> None:
        """Add parts (one series and finest-level block each) into every level's rows."""
        wide: dict[str, dict] = {}
        for part in parts:
            for width in self.levels:
                block = part["bucket"] - part["bucket"] % width
                k = key(part, width, block)
                known = wide.get(k)
                if known is None:
                    wide[k] = {**part, "key": k, "width": width, "bucket": block,
                               "hist": list(part["hist"])}
                else:
                    _add_into(known, part)
        if not wide:
            return
        result = conn.execute(EXISTING, {"rows": Rows(_KEYS, {"key": list(wide)})})
        names = result.get_column_names()
        created, updated, deleted = [], [], []
        for values in result.get_all():
            old = dict(zip(names, values, strict=True))
            row = wide.pop(old["key"])
            _add_into(row, {**old, "hist": unpack(old[f"b{i}"] for i in range(PACKED))})
            (updated if row["nbuckets"] > 0 else deleted).append(row)
        created = [row for row in wide.values() if row["nbuckets"] > 0]
        _write(conn, CREATE, created)
        _write(conn, UPDATE, updated)
        if deleted:
            conn.execute(DELETE, {"rows": Rows(_KEYS, {"key": [r["key"] for r in deleted]})})


def _bucket_part(bucket: CallBucket) -> dict:
    return {"client": bucket.client, "server": bucket.server, "protocol": bucket.protocol,
            "method": bucket.method, "path": bucket.path, "naming": bucket.naming,
            "bucket": bucket.bucket, "requests": bucket.requests, "errors": bucket.errors,
            "latency_sum": bucket.latency_sum_ms, "hist": bucket.histogram}


def _grouped(row: dict) -> dict:
    row["hist"] = [row.pop(f"h{i}") or 0 for i in range(histogram.BIN_COUNT)]
    return row


def _part(row: Mapping[str, Any], *, sign: int = 1, buckets: int | None = None) -> dict:
    """One bucket's counts (times sign) as a tier part; `nbuckets` counts the buckets
    a tier row holds, so a row emptied by a move is deleted rather than kept at zero."""
    return {
        **{name: row[name] for name in _SERIES}, "bucket": row["bucket"],
        "nbuckets": sign if buckets is None else buckets,
        "requests": sign * row["requests"], "errors": sign * row["errors"],
        "latency_sum": sign * row["latency_sum"],
        "hist": [sign * count for count in row["hist"]],
    }


def _add_into(target: dict, other: Mapping[str, Any]) -> None:
    for name in ("nbuckets", "requests", "errors", "latency_sum"):
        target[name] += other[name]
    target["hist"] = [a + b for a, b in zip(target["hist"], other["hist"], strict=True)]


def _write(conn: Conn, text: str, data: list[dict]) -> None:
    if not data:
        return
    columns: dict[str, list] = {name: [] for name in names(COLUMNS)}
    for row in data:
        packed = pack(row["hist"])
        for name in names(COLUMNS)[:13]:
            columns[name].append(row[name])
        columns["total"].append(sum(row["hist"]))
        for i, value in enumerate(packed):
            columns[f"b{i}"].append(value)
        columns["sid"].append(SERIES.add(
            row["client"], row["server"], row["protocol"], row["path"]))
    conn.execute(text, {"rows": Rows(COLUMNS, columns)})


def _align_up(value: int, width: int) -> int:
    return -(-int(value) // width) * width


def _align_down(value: int, width: int) -> int:
    return int(value) // width * width
