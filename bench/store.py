"""Upsert throughput of the embedded store, and reading back one hour.

1,000 services and 10,000 (client, server) pairs. Each minute every pair gets
one bucket row, written as batches of 1,000 or 10,000 distinct keys (new keys:
the create path). Then the same keys again under new batch ids (the update
path). Finally one hour of buckets is read back for all pairs, both as raw
rows and aggregated per pair.

    .venv/bin/python bench/store.py [--minutes 30]
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import tempfile
import time

from topology import histogram
from topology.model import Batch, CallBucket, Service, workload_id
from topology.settings import Settings
from topology.store.ladybug_store import LadybugStore
from topology.store.statement import Statement

SERVICES = 1_000
PAIRS = 10_000
T0 = 1_700_000_000 - 1_700_000_000 % 3600

# The histogram as one list, whatever the layout (scalar columns h0..h25 since
# the embedded store dropped list counters): the same rows as before the change.
_HIST = "[" + ", ".join(f"e.h{i}" for i in range(histogram.BIN_COUNT)) + "]"
HOUR_ROWS = Statement.same(
    "bench.hour_rows",
    "MATCH (e:CallBucket) WHERE e.bucket >= $from AND e.bucket < $to "
    f"RETURN e.client AS client, e.server AS server, e.requests AS requests, {_HIST} AS hist",
)
HOUR_PER_PAIR = Statement.same(
    "bench.hour_per_pair",
    "MATCH (e:CallBucket) WHERE e.bucket >= $from AND e.bucket < $to "
    "RETURN e.client AS client, e.server AS server, sum(e.requests) AS requests, "
    f"sum(e.errors) AS errors, collect({_HIST}) AS hists",
)


def topology_(rng: random.Random) -> tuple[list[Service], list[tuple[str, str]]]:
    services = [
        Service(workload_id("bench", f"ns{i % 20}", "Deployment", f"svc{i}"), f"svc{i}",
                "Deployment", f"ns{i % 20}", "bench", {"team": f"t{i % 7}"}, T0)
        for i in range(SERVICES)
    ]
    pairs: set[tuple[str, str]] = set()
    while len(pairs) < PAIRS:
        a, b = rng.randrange(SERVICES), rng.randrange(SERVICES)
        if a != b:
            pairs.add((services[a].id, services[b].id))
    return services, sorted(pairs)


def minute_rows(pairs: list[tuple[str, str]], minute: int, rng: random.Random) -> list[CallBucket]:
    rows = []
    for client, server in pairs:
        row = CallBucket(client, server, T0 + 60 * minute, 60, "http", "GET", "/api/{id}")
        for _ in range(3):
            row.record(rng.lognormvariate(2.5, 1.0), error=rng.random() < 0.01, status=200)
        rows.append(row)
    return rows


def run(store: LadybugStore, services: list[Service], pairs: list[tuple[str, str]],
        minutes: range, batch_size: int, tag: str, rng: random.Random) -> list[float]:
    """Rows per second of each batch."""
    rates = []
    for minute in minutes:
        rows = minute_rows(pairs, minute, rng)
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            batch = Batch(f"{tag}-{minute}-{start}", services, chunk)
            began = time.perf_counter()
            store.apply(batch, now=T0)
            rates.append(len(chunk) / (time.perf_counter() - began))
    return rates


def timed(store: LadybugStore, statement: Statement, repeat: int = 5) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(repeat):
        began = time.perf_counter()
        count = len(store.read(statement, {"from": T0, "to": T0 + 3600}))
        times.append(time.perf_counter() - began)
    return statistics.median(times), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=30, help="minutes per batch size")
    args = parser.parse_args()
    rng = random.Random(7)
    services, pairs = topology_(rng)
    with tempfile.TemporaryDirectory() as data_dir:
        store = LadybugStore(Settings.load({}, data_dir=data_dir, query_timeout="600s"))
        store.init_schema()
        half = args.minutes
        print(f"{SERVICES} services, {PAIRS} pairs, one row per pair per minute")
        for size, minutes in ((1_000, range(0, half)), (10_000, range(half, 2 * half))):
            created = run(store, services, pairs, minutes, size, f"new{size}", rng)
            updated = run(store, services, pairs, range(minutes.start, minutes.start + 5),
                          size, f"again{size}", rng)
            print(f"batches of {size:>6} keys: create median {statistics.median(created):>8,.0f} "
                  f"rows/s (p10 {_pct(created, 10):,.0f}), update median "
                  f"{statistics.median(updated):>8,.0f} rows/s")
        seconds, count = timed(store, HOUR_ROWS)
        print(f"read one hour, raw rows: {count:,} rows in {seconds * 1000:,.0f} ms (median of 5)")
        seconds, count = timed(store, HOUR_PER_PAIR)
        print(f"read one hour, per pair: {count:,} pairs in {seconds * 1000:,.0f} ms (median of 5)")
        print("stats:", store.stats())
        store.close()
    # the writer's memory: LadybugDB's client once kept every write's arrow tables
    # (statements over rows are prepared for their one run: ladybug_rows.py)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"peak RSS of this process: {peak:,} MB")


def _pct(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[max(0, len(ordered) * pct // 100 - 1)]


if __name__ == "__main__":
    main()
