"""What each statement of an embedded write costs in LadybugDB: fixed and per row.

Same data as bench/store.py (1,000 services, 10,000 pairs, one bucket row per
pair per minute), a few minutes of buckets already stored. Each statement the
write path sends is timed on a small and a large input inside a transaction
that is rolled back (the store does not change), median of `--repeat`; the
difference gives its cost per row, the small run its fixed cost (parsing and
planning included: a statement over rows is prepared anew for every write,
and its rows written to the file LadybugDB reads them from, ladybug_rows.py).
COPY is timed with its COMMIT, whose checkpoint it forces.

The last lines add up the database's share of a create transaction (existence
read, new rows, pair `last_seen` SET, commit, and the checkpoint of the new
rows: forced by COPY's commit, or run later for CREATE's) and the ceiling in
rows/s it leaves, before any Python.

    .venv/bin/python bench/store_costs.py [--minutes 5] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable

import store as bench  # bench/store.py: the same data

from topology.settings import Settings
from topology.store import ladybug_buckets as lb
from topology.store import ladybug_schema as q
from topology.store.ladybug_ids import bucket_ids
from topology.store.ladybug_rows import Rows, pick
from topology.store.ladybug_store import LadybugStore

SMALL, LARGE = 10, 1_000


def timed(conn, text: str, params: dict, repeat: int, *, commit: bool = False) -> float:
    """Median seconds of the statement in a transaction rolled back (or committed)."""
    times = []
    for _ in range(repeat):
        conn.execute("BEGIN TRANSACTION")
        began = time.perf_counter()
        conn.execute(text, params)
        if commit:
            conn.execute("COMMIT")
        times.append(time.perf_counter() - began)
        if not commit:
            conn.execute("ROLLBACK")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=5, help="minutes of buckets stored first")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(7)
    services, pairs = bench.topology_(rng)
    with tempfile.TemporaryDirectory() as data_dir:
        store = LadybugStore(Settings.load({}, data_dir=data_dir, query_timeout="600s"))
        store.init_schema()
        bench.run(store, services, pairs, range(args.minutes), 10_000, "warm", rng)
        # the writer's own connection, writing as the store does (rows through a file)
        conn = store._writes(store._writer)

        def new_rows(n: int, minute: int) -> Rows:
            rows = bench.minute_rows(pairs[:n], minute, rng)
            return lb.table(rows, bucket_ids([b.key for b in rows], [b.bucket for b in rows]))

        def stored_ids(n: int) -> list[int]:
            rows = bench.minute_rows(pairs[:n], 0, rng)
            return bucket_ids([b.key for b in rows], [b.bucket for b in rows])

        def pair_rows(n: int) -> Rows:
            return Rows(pick(q.PAIR_COLUMNS, ("id", "last_seen")), {
                "id": q.pair_ids(pairs[:n]), "last_seen": [bench.T0 + 10**6] * n})

        def added(n: int, columns: int) -> Rows:
            names = q.BUCKET_ADDED[:columns]
            return Rows(pick(q.BUCKET_COLUMNS, ("id", *names)),
                        {"id": stored_ids(n), **{name: [1] * n for name in names}})

        cases: dict[str, tuple[str, Callable[[int], dict]]] = {
            "existence read (buckets)": (q.BUCKETS_EXISTING, lambda n: {"rows": Rows(
                lb._PROBE, {"i": range(n), "id": stored_ids(n),
                            "key": [b.key for b in bench.minute_rows(pairs[:n], 0, rng)],
                            "naming": ["workload"] * n, "nex": [0] * n})}),
            "CREATE new buckets (46 columns)": (
                q.BUCKETS_CREATE, lambda n: {"rows": new_rows(n, 10**4)}),
            "additive SET, 1 column": (
                q.buckets_add(q.BUCKET_ADDED[:1]), lambda n: {"rows": added(n, 1)}),
            "additive SET, 5 columns": (
                q.buckets_add(q.BUCKET_ADDED[:5]), lambda n: {"rows": added(n, 5)}),
            "pair MATCH only": (
                "LOAD FROM $rows MATCH (p:CallPair {id: id}) RETURN count(*)",
                lambda n: {"rows": pair_rows(n)}),
            "pair last_seen SET": (
                q.pairs_update(("last_seen",)), lambda n: {"rows": pair_rows(n)}),
        }
        print(f"{len(services):,} services, {len(pairs):,} pairs, "
              f"{store.stats()['minute_buckets']:,} buckets stored; "
              f"median of {args.repeat}, rolled back")
        print(f"{'statement':34s} {'fixed ms':>9s} {'per row us':>11s}")
        per_row: dict[str, float] = {}
        fixed: dict[str, float] = {}
        for label, (text, params) in cases.items():
            small = timed(conn, text, params(SMALL), args.repeat)
            large = timed(conn, text, params(LARGE), args.repeat)
            per_row[label] = (large - small) / (LARGE - SMALL)
            fixed[label] = small - SMALL * per_row[label]
            print(f"{label:34s} {fixed[label] * 1e3:9.2f} {per_row[label] * 1e6:11.1f}")
        every = timed(conn, "MATCH (p:CallPair) SET p.last_seen = p.last_seen + 1", {},
                      args.repeat)
        print(f"every pair's last_seen SET, no join: {every * 1e3:.0f} ms for {len(pairs):,} "
              f"CallPair nodes ({every / len(pairs) * 1e6:.1f} us each)")
        copies = []
        for minute in range(args.repeat):
            rows = new_rows(10_000, 2 * 10**4 + minute)
            copies.append(timed(conn, q.BUCKETS_COPY, {"rows": rows}, 1, commit=True))
        copy = statistics.median(copies)
        print(f"COPY 10,000 new buckets + COMMIT (its checkpoint): {copy * 1e3:.0f} ms "
              f"({copy / 10_000 * 1e6:.1f} us per row)")
        creates = [timed(conn, q.BUCKETS_CREATE, {"rows": new_rows(LARGE, 3 * 10**4 + k)}, 1,
                         commit=True) for k in range(10)]
        began = time.perf_counter()
        conn.execute("CHECKPOINT")
        later = (time.perf_counter() - began) / (10 * LARGE)
        create = statistics.median(creates)
        print(f"CREATE {LARGE:,} new buckets + COMMIT: {create * 1e3:.0f} ms; the checkpoint of "
              f"10 such commits (LadybugDB runs one about every 16 MB of WAL) "
              f"{later * 1e6:.1f} us per row")
        read, pair = "existence read (buckets)", "pair last_seen SET"
        for n, new in ((LARGE, create + later * LARGE), (10_000, copy)):
            floor = fixed[read] + n * per_row[read] + fixed[pair] + n * per_row[pair] + new
            print(f"create transaction of {n:>6,} rows, database only, checkpoint included: "
                  f"{floor * 1e3:4.0f} ms, at most {n / floor:>7,.0f} rows/s before any Python")
        store.close()


if __name__ == "__main__":
    main()
