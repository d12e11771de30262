"""Memory of the embedded store over hours of data: LadybugDB's buffer pool pages.

Store only, in this process: every simulated minute brings `--edges` new
bucket keys (10,000: the issue's load), written as three batches of 8,000
calls drawn from them, so most keys of a minute are created by its first write
and added into by the next two, as the worker's group commits do. Every
`--every` minutes it prints the resident pages of LadybugDB's buffer pool (its
virtual region: the anonymous mappings of at least 1 GiB), this process's RSS
and the RSS peak so far. With `--lookups N` it then opens the file again in a
child process and looks up N bucket ids of the newest minute, printing the pool
pages they touched: the working set of a write's lookups, without the pages
cached by earlier writes.

    .venv/bin/python bench/store_pool.py [--minutes 200] [--edges 10000] [--every 20]
        [--buffer-pool-mb 256] [--reopen-rows 0] [--lookups 24000]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proc_memory import rss_mb, rss_parts

from topology import malloctune
from topology.model import Batch, CallBucket, Service
from topology.store.rows import merge_buckets

T0 = 1_700_000_000 - 1_700_000_000 % 3600
SERVICES = 400
WRITES_PER_MINUTE = 3
CALLS_PER_WRITE = 8_000


def minute_calls(rng: random.Random, edges: list[tuple[str, str, str, str]], minute: int
                 ) -> list[CallBucket]:
    calls = []
    for edge in rng.sample(range(len(edges)), min(CALLS_PER_WRITE, len(edges))):
        client, server, method, path = edges[edge]
        row = CallBucket(client, server, T0 + 60 * minute, 60, "http", method, path)
        row.record(float(rng.randrange(1, 200)), error=rng.random() < 0.01, status=200)
        calls.append(row)
    return list(merge_buckets(calls, ordered=False).values())


def write(args: argparse.Namespace, data_dir: str) -> None:
    from topology.settings import Settings
    from topology.store.ladybug_store import LadybugStore

    overrides = {"embedded_buffer_pool_mb": args.buffer_pool_mb, "embedded_writer_threads": 1}
    if args.reopen_rows:  # a setting older versions do not have: given only when used
        overrides["embedded_reopen_rows"] = args.reopen_rows
    store = LadybugStore(Settings.load({}, data_dir=data_dir, **overrides))
    store.init_schema()
    rng = random.Random(1)
    services = [Service(f"k8s:prod/ns{i % 20}/Deployment/svc{i}", f"svc{i}", "Deployment",
                        namespace=f"ns{i % 20}", cluster="prod", seen=T0)
                for i in range(SERVICES)]
    edges = [(services[rng.randrange(SERVICES)].id, services[rng.randrange(SERVICES)].id,
              rng.choice(("GET", "POST")), f"/api/v1/items{e % 7}/{{id}}/{e}")
             for e in range(args.edges)]
    peak, started, batch = 0.0, time.monotonic(), 0
    print(f"{args.edges} new bucket keys a minute, {WRITES_PER_MINUTE} writes of "
          f"{CALLS_PER_WRITE} calls each; pool {args.buffer_pool_mb} MiB, reopen every "
          f"{args.reopen_rows or 'never'} new rows")
    for minute in range(args.minutes):
        for _ in range(WRITES_PER_MINUTE):
            batch += 1
            store.apply_many([Batch(f"b{batch}", services, minute_calls(rng, edges, minute))],
                             now=T0 + 60 * minute)
            peak = max(peak, rss_mb())
        if (minute + 1) % args.every == 0:
            pool = rss_parts()["pool"]
            print(f"minute {minute + 1:4d}: pool pages {pool:5.0f} MB, RSS {rss_mb():4.0f} "
                  f"MB, peak {peak:4.0f} MB, {time.monotonic() - started:5.0f} s", flush=True)
    store.close()


LOOKUPS = """
import sys
import ladybug, pyarrow as pa
sys.path.insert(0, sys.argv[3])
from proc_memory import rss_parts
db = ladybug.Database(sys.argv[1], buffer_pool_size=256 * 2**20)
conn = ladybug.Connection(db, num_threads=1)
newest = conn.execute("MATCH (e:CallBucket) RETURN max(e.bucket)").get_all()[0][0]
ids = [r[0] for r in conn.execute("MATCH (e:CallBucket) WHERE e.bucket = $b RETURN e.id",
                                  {"b": newest}).get_all()]
before = rss_parts()["pool"]
wanted = (ids * (int(sys.argv[2]) // max(len(ids), 1) + 1))[:int(sys.argv[2])]
conn.execute("LOAD FROM $rows MATCH (e:CallBucket {id: id}) RETURN count(*)",
             {"rows": pa.table({"id": pa.array(wanted, pa.int64())})}).get_all()
print(f"{len(wanted)} lookups of the newest minute's {len(ids)} ids in a fresh process: "
      f"pool pages {before:.0f} -> {rss_parts()['pool']:.0f} MB")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=200)
    parser.add_argument("--edges", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=20, help="print every this many minutes")
    parser.add_argument("--buffer-pool-mb", type=int, default=256)
    parser.add_argument("--reopen-rows", type=int, default=0,
                        help="TOPOLOGY_EMBEDDED_REOPEN_ROWS (0: never, the store's default)")
    parser.add_argument("--lookups", type=int, default=24_000,
                        help="ids of the newest minute looked up afterwards (0: none)")
    args = parser.parse_args()
    if malloctune.tune({}):  # as `topology worker` runs
        malloctune.Trimmer().start()
    with tempfile.TemporaryDirectory(prefix="store-pool-") as data_dir:
        write(args, data_dir)
        if args.lookups:
            from topology.settings import Settings

            path = Settings.load({}, data_dir=data_dir).embedded_path
            subprocess.run([sys.executable, "-c", LOOKUPS, str(path), str(args.lookups),
                            str(Path(__file__).parent)], check=True)


if __name__ == "__main__":
    main()
