"""Query speed: filter compile time, service map, blast radius, and a DuckDB baseline.

On the embedded store (LadybugDB): 1,000 services, 10,000 active pairs (a
layered call graph, callers always in a higher layer) and 60 one-minute
buckets per pair (600,000 CallBucket nodes, one call per second per pair).
The retention job runs every 5 minutes of data time while the store loads, as
in production (it rolls the buckets into the pre-aggregated tiers), and "now"
is unaligned: 25 s before the end of the last loaded minute, whose start is 7
minutes past the hour, so the last hour starts inside a tier block. Each query
prints the rows it read (buckets at the window's edges, tier rows between).

* compile: `compile_filter` over the filter corpus, cache cleared each time;
* service map: `service_map` for the last hour, no filter and with a filter
  (p50 and p95; every edge carries p50/p95/p99 latency from merged histograms);
  the first map of the process fills the in-process units (queries/window_cache.py,
  timed apart); then live: a small write into the newest minute before each call,
  with the window fixed and sliding 7 s per call, as a refreshing map view;
* blast radius: `blast_radius` at depth 5 (the CALLS walk, then the health of
  every dependent in the window), and the walk alone; both come from in-process
  caches the store's writer keeps exact, filled by the first call (timed apart),
  with the garbage collector's pauses during the calls; then live: a small write
  into the newest minute before each call (the health cache re-reads that minute);
* baseline: DuckDB (2 threads) computing the same map (calls, error rate, p99
  per pair) by GROUP BY over the 36 million raw call events behind the buckets.

Prints medians and ratios; targets from the issue are printed next to them.
Run: .venv/bin/python bench/queries.py [--runs R] [--data-dir DIR]
(--data-dir keeps the loaded store between runs; it is reused when complete).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

# Run as `python bench/queries.py`, this file's directory leads sys.path and its
# name would shadow the `queries` package: drop that entry before importing it.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]

from queries.compiler import compile_filter  # noqa: E402
from queries.service_map import service_map  # noqa: E402
from queries.tiering import plan  # noqa: E402
from queries.traversal import Direction, blast_radius, walk  # noqa: E402
from queries.window import Window  # noqa: E402
from topology import histogram  # noqa: E402
from topology.model import (  # noqa: E402
    KIND_DEPLOYMENT,
    MINUTE,
    Batch,
    CallBucket,
    Service,
    workload_id,
)
from topology.settings import Settings  # noqa: E402
from topology.store.ladybug_store import LadybugStore  # noqa: E402
from topology.store.statement import Statement  # noqa: E402

SERVICES, PAIRS, MINUTES, LAYERS = 1_000, 10_000, 60, 10
T0 = 1_763_712_000 + 7 * MINUTE  # first loaded minute
NOW = T0 + MINUTES * MINUTE - 25
WINDOW = Window.last(3600, NOW)  # a user's `last: "1h"`: every loaded minute
RETENTION_EVERY = 300  # the retention job's default interval
LAST_JOB = NOW - 150  # the job's phase: its last run, half an interval ago
FILTER = "server.namespace = ns3 or client.label.team = team1 and not error = true"
COMPILED = (
    "server.namespace = metoro", "client.service.name = metoro-apiserver", "v1.traces",
    "server.service.name = api.stripe.com", "status >= 500 and not server.external = true",
    "client.label.team contains pay or (path =~ \"^/api/v[0-9]+/\" method in [GET, POST])",
    "service.namespace != kube-system error = true", FILTER,
)


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


class GcPauses:
    """Collections of the garbage collector (per generation) and their pauses while
    inside the block, from gc callbacks."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._began = 0.0

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._began))

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> str:
        parts = []
        for generation in (0, 1, 2):
            times = [t for g, t in self.pauses if g == generation]
            if times:
                parts.append(f"gen{generation} x{len(times)} (max {max(times) * 1000:.1f} ms)")
        return ", ".join(parts) or "none"


def write_newest(store: LadybugStore, services: list[Service], pairs: list, run: int) -> None:
    """A small write (one bucket of a known pair) into the newest loaded minute."""
    newest = T0 + (MINUTES - 1) * MINUTE
    client, server = pairs[0][0], pairs[0][1]
    bucket = CallBucket(services[client].id, services[server].id, newest, MINUTE, "http",
                        "GET", "/api/v1/items", 1, 0, 10.0,
                        [1 if i == histogram.bin_index(10.0) else 0
                         for i in range(histogram.BIN_COUNT)], [0, 0, 1, 0, 0, 0])
    store.apply(Batch(f"live-{time.time_ns()}-{run}", [], [bucket]), now=NOW)


def live(store: LadybugStore, services: list[Service], pairs: list, runs: int,
         query: Callable[[int], object]) -> list[float]:
    """A query timed after a small write into the newest minute before each call: the
    in-process caches re-read what that write touched."""
    times = []
    for run in range(runs):
        write_newest(store, services, pairs, run)
        start = time.perf_counter()
        query(run)
        times.append(time.perf_counter() - start)
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def graph() -> tuple[list[Service], list[tuple[int, int, float, float]]]:
    """Services in layers; pairs (client, server, error share, typical latency ms)."""
    rng = random.Random(7)
    services = [
        Service(workload_id("prod", f"ns{i % 10}", KIND_DEPLOYMENT, f"svc{i}"), f"svc{i}",
                KIND_DEPLOYMENT, f"ns{i % 10}", "prod", {"team": f"team{i % 7}"}, T0)
        for i in range(SERVICES)
    ]
    per_layer = SERVICES // LAYERS
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < PAIRS:
        layer = rng.randrange(LAYERS - 1)
        client = layer * per_layer + rng.randrange(per_layer)
        server = rng.randrange((layer + 1) * per_layer, SERVICES)
        pairs.add((client, server))
    return services, [(c, s, rng.choice((0.0, 0.0, 0.01, 0.1)), rng.uniform(2, 400))
                      for c, s in sorted(pairs)]


def load(store: LadybugStore, services: list[Service], pairs: list) -> None:
    """One call per second per pair: 60 calls per bucket, latency ms * U(0.5, 2)."""
    rng = random.Random(11)
    profiles = []
    for _, _, _, ms in pairs:
        durations = [ms * rng.uniform(0.5, 2.0) for _ in range(60)]
        hist = histogram.empty()
        for duration in durations:
            hist[histogram.bin_index(duration)] += 1
        profiles.append((hist, sum(durations)))
    for minute in range(MINUTES):
        start = T0 + minute * MINUTE
        buckets = []
        for (c, s, error_share, _), (hist, latency_sum) in zip(pairs, profiles, strict=True):
            errors = sum(rng.random() < error_share for _ in range(60)) if error_share else 0
            buckets.append(CallBucket(
                services[c].id, services[s].id, start, MINUTE, "http", "GET", "/api/v1/items",
                60, errors, latency_sum, list(hist), [0, 0, 60 - errors, 0, 0, errors],
            ))
        store.apply(Batch(f"bench-{minute}", services if minute == 0 else [], buckets),
                    now=start + MINUTE)
        print(f"\rloading minute {minute + 1}/{MINUTES}", end="", flush=True)
        for job in range(LAST_JOB - 300 * (MINUTES // 5 + 1), LAST_JOB + 1, RETENTION_EVERY):
            if start + MINUTE <= job < start + 2 * MINUTE:
                store.retention(job)
    print()


def rows_read(store: LadybugStore, window: Window) -> str:
    """How many bucket and tier rows a query over the window reads (unfiltered)."""
    found = plan(window, store.tier_range())
    buckets = sum(
        store.read(_COUNT_BUCKETS, {"since": a, "until": b})[0]["n"] for a, b in found.ranges)
    tiers = sum(
        store.read(_COUNT_TIERS, {"w": w, "a": a, "b": b})[0]["n"] for w, a, b in found.blocks)
    return (f"{buckets:,} bucket rows + {tiers:,} tier rows "
            f"({(buckets + tiers) / PAIRS:.1f} per pair; buckets {list(found.ranges)}, "
            f"tier blocks {list(found.blocks)})")


_COUNT_BUCKETS = Statement.same(
    "count_buckets",
    "MATCH (k:CallBucket) WHERE k.bucket >= $since AND k.bucket < $until RETURN count(*) AS n")
_COUNT_TIERS = Statement.same(
    "count_tiers", "MATCH (k:CallTier) WHERE k.width = $w AND k.bucket >= $a AND k.bucket < $b "
    "RETURN count(*) AS n")


def duckdb_baseline(pairs: list, runs: int) -> tuple[list[float], list[float]]:
    """Exact (quantile_cont) and approximate p99 over 36M raw rows, 2 threads."""
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute("CREATE TABLE pairs(id INTEGER, client INTEGER, server INTEGER, "
                "err DOUBLE, ms DOUBLE)")
    con.executemany("INSERT INTO pairs VALUES (?, ?, ?, ?, ?)",
                    [(i, c, s, e, ms) for i, (c, s, e, ms) in enumerate(pairs)])
    con.execute(
        "CREATE TABLE calls AS SELECT p.client, p.server, "
        f"({T0} + t.range)::INTEGER AS ts, "
        "(p.ms * (0.5 + 1.5 * random()))::FLOAT AS duration_ms, "
        "random() < p.err AS error FROM pairs p, range(3600) t"
    )
    rows = con.execute("SELECT count(*) FROM calls").fetchone()[0]
    print(f"duckdb: {rows:,} raw call rows")
    sql = (
        "SELECT client, server, count(*) AS calls, avg(error::INTEGER) AS error_rate, "
        "{p99} AS p99 FROM calls WHERE ts >= ? AND ts < ? GROUP BY client, server"
    )
    exact = sql.format(p99="quantile_cont(duration_ms, 0.99)")
    approx = sql.format(p99="approx_quantile(duration_ms, 0.99)")
    params = [WINDOW.since, WINDOW.until]
    return (timed(lambda: con.execute(exact, params).fetchall(), runs),
            timed(lambda: con.execute(approx, params).fetchall(), runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    texts = list(COMPILED)

    def compile_all() -> None:
        compile_filter.cache_clear()
        for text in texts:
            compile_filter(text)

    compile_times = timed(compile_all, args.runs)
    print(f"compile: median {statistics.median(compile_times) / len(texts) * 1e6:.0f} us "
          f"per filter ({len(texts)} filters, cache cleared)")

    services, pairs = graph()
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="bench-queries-")
    store = LadybugStore(Settings.load({}, data_dir=data_dir))
    store.init_schema()
    if store.stats()["minute_buckets"] != PAIRS * MINUTES or store.tier_range() is None:
        if store.stats()["services"]:
            raise SystemExit(f"{Path(data_dir)} holds another data set; use an empty dir")
        load(store, services, pairs)
    print("store:", store.stats(), "tiers:", store.tier_range())
    print(f"window: last hour at now={NOW} (unaligned): {WINDOW}; reads "
          f"{rows_read(store, WINDOW)}")
    print(f"one-minute window reads {rows_read(store, Window(T0, T0 + MINUTE))}")

    # the first map of a process also reads the series names of the tier rows it
    # did not write itself (queries/tiering.py): timed apart, as a cold start
    cold = timed(lambda: service_map(store, WINDOW), 1)[0]
    plain = timed(lambda: service_map(store, WINDOW), args.runs)
    live_maps = live(store, services, pairs, args.runs, lambda _: service_map(store, WINDOW))
    # the window sliding as a map view refreshes: each call 7 s later than the last
    sliding = live(store, services, pairs, args.runs, lambda run: service_map(
        store, Window.last(3600, NOW - 7 * (args.runs - run))))
    edges = len(service_map(store, WINDOW).edges)
    filtered = timed(lambda: service_map(store, WINDOW, FILTER), args.runs)
    minute = timed(lambda: service_map(store, Window(T0, T0 + MINUTE)), args.runs)
    # blast radius from services of the next-to-last layer: callers come from every
    # earlier layer, so depth 5 reaches hundreds of dependents
    layer = SERVICES // LAYERS
    sources = [s.id for s in services[-2 * layer:-layer]]
    targets = iter(sources * (args.runs * 2 // len(sources) + 1))
    walks = iter(sources * (args.runs * 2 // len(sources) + 1))
    # the first blast radius of a process fills the in-process caches the writer keeps
    # exact (queries/adjacency.py, queries/health.py): timed apart, as a cold start
    blast_cold = timed(lambda: blast_radius(store, sources[-1], WINDOW, depth=5), 1)[0]
    with GcPauses() as pauses:
        blast = timed(lambda: blast_radius(store, next(targets), WINDOW, depth=5),
                      args.runs * 2)
    with GcPauses() as live_pauses:
        live_blasts = live(store, services, pairs, args.runs * 2, lambda run: blast_radius(
            store, sources[run % len(sources)], WINDOW, depth=5))
    gc.collect()
    full_gc = timed(gc.collect, 3)
    # what a server gains by freezing its heap once warm (`gc.freeze()`: the objects
    # alive then are left out of every later collection); not done by the library
    gc.freeze()
    with GcPauses() as frozen_pauses:
        frozen = live(store, services, pairs, args.runs * 2, lambda run: blast_radius(
            store, sources[run % len(sources)], WINDOW, depth=5))
    gc.unfreeze()
    walk_only = timed(
        lambda: walk(store, next(walks), Direction.UPSTREAM, 5, WINDOW), args.runs * 2)
    reach = blast_radius(store, sources[0], WINDOW, depth=5).total
    store.close()

    exact, approx = duckdb_baseline(pairs, max(3, args.runs // 3))
    ms = 1000.0
    print(f"service map, last hour ({edges} edges): p50 {statistics.median(plain) * ms:.0f} ms, "
          f"p95 {p95(plain) * ms:.0f} ms (target p50 <= 200 ms)")
    print(f"  first map of the process (cold series names and units): {cold * ms:.0f} ms")
    print(f"service map under live ingest (a small write into the newest minute before "
          f"each call): p50 {statistics.median(live_maps) * ms:.0f} ms, "
          f"p95 {p95(live_maps) * ms:.0f} ms")
    print(f"  the same with the window sliding 7 s per call: p50 "
          f"{statistics.median(sliding) * ms:.0f} ms, p95 {p95(sliding) * ms:.0f} ms")
    print(f"service map with filter {FILTER!r}: p50 {statistics.median(filtered) * ms:.0f} ms, "
          f"p95 {p95(filtered) * ms:.0f} ms")
    print(f"service map, one minute (10,000 buckets): p50 "
          f"{statistics.median(minute) * ms:.0f} ms, p95 {p95(minute) * ms:.0f} ms")
    print(f"blast radius depth 5 (e.g. {reach} dependents): p50 "
          f"{statistics.median(blast) * ms:.1f} ms, p95 {p95(blast) * ms:.1f} ms "
          "(target p95 <= 50 ms)")
    print(f"  of which the CALLS walk alone: p50 {statistics.median(walk_only) * ms:.1f} ms, "
          f"p95 {p95(walk_only) * ms:.1f} ms")
    print(f"  garbage collector during those calls: {pauses.summary()}")
    print(f"  first blast radius of the process (fills the caches): {blast_cold * ms:.0f} ms")
    print(f"blast radius depth 5 under live ingest (a small write into the newest minute "
          f"before each call): p50 {statistics.median(live_blasts) * ms:.1f} ms, "
          f"p95 {p95(live_blasts) * ms:.1f} ms")
    print(f"  garbage collector during those calls: {live_pauses.summary()}; a full "
          f"collection in this process takes {statistics.median(full_gc) * ms:.0f} ms")
    print(f"  the same after gc.freeze() (a server's choice once warm): p50 "
          f"{statistics.median(frozen) * ms:.1f} ms, p95 {p95(frozen) * ms:.1f} ms; "
          f"collector: {frozen_pauses.summary()}")
    for name, times in (("exact quantile_cont", exact), ("approx_quantile", approx)):
        median = statistics.median(times)
        print(f"duckdb baseline ({name}, 2 threads): median {median * ms:.0f} ms; "
              f"ratio duckdb / service map = {median / statistics.median(plain):.2f} "
              "(target >= 2.5)")


if __name__ == "__main__":
    main()
