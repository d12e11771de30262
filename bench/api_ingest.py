"""POST /v1/events through a real `topology serve` (uvicorn, embedded store).

Starts the server in a subprocess on a free port with a fresh data directory,
then `--clients` threads each post `--batches` batches of `--calls` calls
(one keep-alive connection per client). Prints the median and p95 request
latency, the accepted batches and calls per second (wall clock, until the last
202), the freshness of embedded mode (from a batch's 202 until the server's
`topology_ingest_events_counted` shows its calls written, read from /metrics
every 20 ms; the queue writes batches in the order it accepted them), and how
long SIGTERM took to drain the queue and stop. A 429 is retried after its
Retry-After (counted and reported).

Run: .venv/bin/python bench/api_ingest.py [--clients 8] [--batches 25] [--calls 500]
     [--rate CALLS_PER_S] [--batches-per-minute N]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import httpx2

START = "from topology.cli_serve import serve; serve(prog_name='topology serve')"


def batch(batch_id: str, calls: int, start: float, servers: int = 20) -> dict[str, Any]:
    """frontend calling `servers` backends (named by leases in the batch), 1 in 10 a 503."""
    return {
        "batch_id": batch_id, "agent": "bench",
        "endpoints": [{"ip": f"10.1.0.{n}", "from": start - 60, "workload": {
            "namespace": "shop", "name": f"backend-{n}", "kind": "Deployment"}}
            for n in range(servers)],
        "calls": [{
            "timestamp": start + i % 60, "side": "client",
            "source": {"ip": "10.0.0.1", "workload": {
                "namespace": "shop", "name": "frontend", "kind": "Deployment"}},
            "destination": {"ip": f"10.1.0.{i % servers}", "port": 8080},
            "protocol": "http", "method": "GET", "path": f"/items/{i}",
            "status": 503 if i % 10 == 0 else 200, "duration_ms": 1.0 + i % 7,
        } for i in range(calls)],
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited at start")
        try:
            if httpx2.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx2.HTTPError:
            time.sleep(0.1)
    raise SystemExit("the server did not answer /healthz in time")


class Accepted:
    """When each batch was accepted, and how many calls were accepted up to it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.total = 0
        self.marks: list[tuple[float, int]] = []

    def add(self, calls: int) -> None:
        with self.lock:
            self.total += calls
            self.marks.append((time.perf_counter(), self.total))


COUNTED = "topology_ingest_events_counted_total"


def _watch(base: str, seen: list[tuple[float, int]], stop: threading.Event) -> None:
    """(time, calls written) from /metrics every 20 ms until stopped."""
    with httpx2.Client(base_url=base, timeout=10) as http:
        while not stop.is_set():
            for line in http.get("/metrics").text.splitlines():
                if line.startswith(COUNTED):
                    seen.append((time.perf_counter(), int(float(line.split()[-1]))))
            stop.wait(0.02)


def freshness(accepted: list[tuple[float, int]], seen: list[tuple[float, int]]) -> list[float]:
    """Per accepted batch: seconds until the calls accepted up to it were all written."""
    waits = []
    j = 0
    for at, total in accepted:
        while j < len(seen) and seen[j][1] < total:
            j += 1
        if j == len(seen):
            break
        waits.append(max(0.0, seen[j][0] - at))
    return waits


def _client(base: str, payloads: list[dict[str, Any]], latencies: list[float],
            retries: list[int], accepted: Accepted, every: float) -> None:
    """Post the payloads one after another, the next `every` seconds after the last
    one's start (0: at once)."""
    with httpx2.Client(base_url=base, timeout=60) as http:
        due = time.perf_counter()
        for payload in payloads:
            due += every
            while True:
                started = time.perf_counter()
                answer = http.post("/v1/events", json=payload)
                latencies.append(time.perf_counter() - started)
                if answer.status_code == 202:
                    accepted.add(len(payload["calls"]))
                    time.sleep(max(0.0, due - time.perf_counter()))
                    break
                if answer.status_code != 429:
                    raise SystemExit(f"unexpected {answer.status_code}: {answer.text}")
                retries.append(1)
                time.sleep(float(answer.headers["Retry-After"]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batches", type=int, default=25, help="per client")
    parser.add_argument("--calls", type=int, default=500, help="per batch")
    parser.add_argument("--batches-per-minute", type=int, default=1,
                        help="a client's batches in one simulated minute (1: each its own)")
    parser.add_argument("--rate", type=float, default=0,
                        help="calls per second over all clients (0: as fast as accepted)")
    args = parser.parse_args()

    data = tempfile.mkdtemp(prefix="topology-bench-")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOPOLOGY_")} | {
        "TOPOLOGY_DATA_DIR": data, "TOPOLOGY_PORT": str(port), "TOPOLOGY_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen([sys.executable, "-c", START], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc, time.monotonic() + 60)
        work = [[batch(f"c{c}-b{b}", args.calls,
                       start=1_800_000_000.0 + 60 * (b // args.batches_per_minute))
                 for b in range(args.batches)] for c in range(args.clients)]
        latencies: list[float] = []
        retries: list[int] = []
        accepted = Accepted()
        seen: list[tuple[float, int]] = []
        watching = threading.Event()
        watcher = threading.Thread(target=_watch, args=(base, seen, watching))
        watcher.start()
        every = args.calls * args.clients / args.rate if args.rate else 0.0
        threads = [threading.Thread(target=_client,
                                    args=(base, w, latencies, retries, accepted, every))
                   for w in work]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        while (not seen or seen[-1][1] < accepted.total) and time.perf_counter() - started < 600:
            time.sleep(0.05)
        watching.set()
        watcher.join()
        stop = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=600)
        drained = time.perf_counter() - stop
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    total = args.clients * args.batches
    ordered = sorted(latencies)
    print(f"clients {args.clients}, batches {total} x {args.calls} calls, 429 retries"
          f" {len(retries)}, load average {os.getloadavg()[0]:.2f}")
    print(f"request latency: median {statistics.median(ordered) * 1000:.1f} ms,"
          f" p95 {ordered[int(0.95 * (len(ordered) - 1))] * 1000:.1f} ms")
    print(f"accepted: {total / elapsed:.1f} batches/s, {total * args.calls / elapsed:,.0f} calls/s"
          f" ({elapsed:.2f} s)")
    waits = sorted(freshness(accepted.marks, seen))
    if len(waits) < total:
        print(f"freshness: only {len(waits)} of {total} batches seen written")
    if waits:
        print(f"freshness (202 -> written): median {statistics.median(waits):.2f} s, p95"
              f" {waits[int(0.95 * (len(waits) - 1))]:.2f} s, max {waits[-1]:.2f} s"
              "  target <= 2 s (p95)")
    print(f"SIGTERM to exit (drains the queue): {drained:.2f} s")


if __name__ == "__main__":
    main()
