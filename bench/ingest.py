"""Ingestion throughput on one core, without the store.

Synthetic traffic with 10,000 distinct edges per minute (client workload,
server workload, method, path template), as the issue sets. Every run gets a
fresh payload decoded from JSON (new objects, new ids in the paths), as a
worker would. Rates use the process's CPU time (the machine is shared; the
load average is printed too). Prints the median of the runs, in events per
second, for:

* aggregate: `Aggregator.add_all` on already resolved events (the issue's
  "aggregation alone"; target >= 250,000 events/s per core);
* resolve+aggregate: `Ingestor.build` of a batch already decoded into records
  (lease lookups, naming, de-duplication, path folding, aggregation, template cap);
* decode: a batch's JSON message body to objects, with kombu's own decoder
  (what Celery used) and with `topology.ingest.wirejson`;
* decode+validate: a stored payload (JSON bytes) into the typed records in one
  step (`schema.decode`, what a build helper does);
* validate: decoded JSON (dicts) checked and converted into the records
  (`schema.validate`, what the embedded queue does);
* build: the whole of `Ingestor.build` (what a worker spends before the write);
* build, small batches: the same payload cut into batches of `--small` events,
  as collectors send them (bench/ingest_e2e.py uses 5,000); with 10,000
  edges, such a batch has about one row per event, so per-row costs show.

The garbage collector is tuned as `topology worker` tunes it
(`topology.ingest.gctune`); `--default-gc` keeps CPython's defaults instead.

Run: .venv/bin/python bench/ingest.py [--events N] [--runs R] [--default-gc]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
from kombu.utils import json as kombu_json

import topology.ingest.pipeline as pipeline
from topology.ingest import gctune, schema, wirejson
from topology.ingest.aggregate import Aggregator
from topology.ingest.records import Batch
from topology.ingest.resolve import Resolver
from topology.settings import Settings

EDGES = 10_000
SERVICES = 400
T0 = 1_763_700_000.0


def _workload(i: int) -> dict[str, Any]:
    return {"cluster": "prod", "namespace": f"ns{i % 20}", "name": f"svc{i}", "kind": "Deployment"}


def _ip(i: int) -> str:
    return f"10.{i // 250}.{i % 250}.1"


def make_batch(events: int, seed: int) -> dict[str, Any]:
    """One minute of traffic: `events` calls over EDGES distinct edges, as decoded JSON."""
    edges_rng, rng = random.Random(0), random.Random(seed)
    endpoints = [{"ip": _ip(i), "workload": _workload(i), "from": T0 - 600}
                 for i in range(SERVICES)]
    edges = [(edges_rng.randrange(SERVICES), edges_rng.randrange(SERVICES),
              edges_rng.choice(("GET", "POST")), f"/api/v1/items{e % 7}/") for e in range(EDGES)]
    calls = []
    for n in range(events):
        client, server, method, prefix = edges[n % EDGES]
        calls.append({
            "timestamp": T0 + rng.random() * 59, "side": "client",
            "source": {"ip": _ip(client), "port": 40000 + n % 20000,
                       "workload": _workload(client)},
            "destination": {"ip": _ip(server), "port": 8080},
            "protocol": "http", "method": method, "path": f"{prefix}{rng.randrange(10**9)}",
            "status": 200 if n % 50 else 503, "duration_ms": rng.random() * 80,
            "trace_id": f"{n:032x}" if n % 100 == 0 else "",
        })
    payload = {"batch_id": f"bench-{seed}", "agent": "bench", "endpoints": endpoints,
               "calls": calls}
    return json.loads(json.dumps(payload))


def _median(runs: int, make: Callable[[int], Any], fn: Callable[[Any], int]) -> float:
    """Median rate of `fn` over fresh inputs; one input alive at a time, as in a worker."""
    rates = []
    for run in range(runs):
        data = make(run)
        start = time.process_time()
        count = fn(data)
        rates.append(count / (time.process_time() - start))
        del data
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--small", type=int, default=5_000, help="events per small batch")
    parser.add_argument("--default-gc", action="store_true",
                        help="keep CPython's collector thresholds (the worker raises them)")
    args = parser.parse_args()
    if not args.default_gc:
        gctune.tune()
    settings = Settings()
    ingestor = pipeline.Ingestor(store=None, settings=settings,  # type: ignore[arg-type]
                                 clock=lambda: T0 + 60)
    ingestor.build(make_batch(1000, seed=0))  # leases remembered

    def payload(run: int) -> dict[str, Any]:
        return make_batch(args.events, seed=run + 1)

    def resolved(run: int) -> list[Any]:
        resolver = Resolver(ingestor.leases.table(()), ingestor.dns.table(()))
        fold = ingestor.folder.fold
        events = []
        for call in schema.validate(payload(run)).calls:
            ends = resolver.resolve(call)
            if ends is not None:
                status = call.status
                events.append((*ends, call.timestamp, call.protocol, call.method,
                               fold(call.path), call.duration_ms,
                               call.error or (status is not None and status >= 500),
                               status, call.trace_id or ""))
        return events

    def aggregate(events: list[Any]) -> int:
        return Aggregator(settings.bucket_width).add_all(events)

    def records(run: int) -> Batch:
        return schema.validate(payload(run))

    def resolve_aggregate(batch: Batch) -> int:
        ingestor.build(batch)
        return len(batch.calls)

    def stored(run: int) -> bytes:
        return orjson.dumps(payload(run))

    def decode_validate(raw: bytes) -> int:
        return len(schema.decode(raw).calls)

    def validate(payload: dict[str, Any]) -> int:
        schema.validate(payload)
        return len(payload["calls"])

    def build(payload: dict[str, Any]) -> int:
        ingestor.build(payload)
        return len(payload["calls"])

    def small_batches(run: int) -> list[dict[str, Any]]:
        calls = payload(run)["calls"]
        return [{"batch_id": f"small-{run}-{n}", "agent": "bench",
                 "calls": calls[n:n + args.small]} for n in range(0, len(calls), args.small)]

    def build_small(batches: list[dict[str, Any]]) -> int:
        for batch in batches:
            ingestor.build(batch)
        return sum(len(batch["calls"]) for batch in batches)

    rows = len(ingestor.build(make_batch(args.events, seed=99)).calls)
    print(f"events per batch: {args.events}, distinct edges: {EDGES}, "
          f"rows per batch: {rows}, runs: {args.runs}, "
          f"load average: {os.getloadavg()[0]:.1f}, CPU time rates, "
          f"gc {'default' if args.default_gc else 'tuned'}")
    rate = _median(args.runs, resolved, aggregate)
    print(f"{'aggregate':>18}: {rate:>12,.0f} events/s (median)")
    print(f"{'resolve+aggregate':>18}: {_median(args.runs, records, resolve_aggregate):>12,.0f}"
          " events/s (median)")
    print(f"{'decode+validate':>18}: {_median(args.runs, stored, decode_validate):>12,.0f}"
          " events/s (median)")
    for name, fn in (("validate", validate), ("build", build)):
        print(f"{name:>18}: {_median(args.runs, payload, fn):>12,.0f} events/s (median)")
    def body(run: int) -> str:
        return kombu_json.dumps([[payload(run)], {}, {}])

    for name, loads in (("decode (kombu)", kombu_json.loads), ("decode (wirejson)",
                                                               wirejson.loads)):
        rate = _median(args.runs, body, lambda text, loads=loads: len(loads(text)[0][0]["calls"]))
        print(f"{name:>18}: {rate:>12,.0f} events/s (median)")
    rate = _median(args.runs, small_batches, build_small)
    print(f"{'build, batches of ' + format(args.small, ','):>18}: {rate:>12,.0f} events/s (median)")

if __name__ == "__main__":
    main()
