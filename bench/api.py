"""API speed: `serviceMap` over HTTP against the store query alone.

Loads an embedded store with S services and E edges (one workload per service
in 20 namespaces, M one-minute buckets per edge ending now), brings its tiers up
to date as a live server's retention job does (one `RetentionJob.run_once()`,
what `topology serve` runs every `retention_interval`; `--no-roll` skips it),
starts the real
app (`topology.api.app.create_app`) under uvicorn in a child process on a free
port, and runs the `ServiceMap` operation of graphql/operations/map.graphql
(every map field but time series and exemplars) from 8 concurrent clients.
Then, with the server stopped, it times the store reads the same request makes
(`map_table`: the map statement over buckets and tiers, read as Arrow; then the
services lookup of the pairs' ends), alone and from 8 threads: the store's
part, without the API's folding, building, execution and encoding. Two more
figures place the API's part: `answer_single_ms`, the answer object (reads,
folding, building) in this process, and `asgi_single_ms`, the whole request
through the real app without a socket, in a process of its own like the
server's (middleware, single flight, Strawberry, the answer, the JSON
encoding); what `http_single_ms` adds to it is the response's way through
uvicorn and the client.

Identical concurrent requests share one execution (single flight, see
topology/api/graphql/flights.py). `--distinct` makes every client's request
body different (an extra variable the operation ignores; same answer) so
nothing is shared: the figure for eight different maps asked at once.

The clients are the standard library's HTTP client (`--client httpx` for the
figures taken before 22 Nov 2026): in this one client process, eight httpx
clients reading 7 MB answers cost more than the API's own work (see
`_stdlib_poster`). Each client's connection is opened before the timing starts.

The window is the M minutes loaded. `--minutes 1` (the default) is one bucket
start: the store's part is the least it can be and the API's own part stands
out. `--minutes 60` is the realistic case, the default window (the last hour)
full of data: after the roll the store reads whole tier blocks and the newest
minutes, as a server does right after its retention run (between runs, up to
`retention_interval` of the newest minutes are read from the buckets too).
Without the roll (`--no-roll`, the figures before 22 Nov 2026 at 60 minutes)
the hour's 60 bucket starts exceed what the window cache sums from memory
(`queries/window_cache.py`, MAX_STARTS) and are read raw from the buckets,
which a live server never does.

Targets (issue 5): p95 <= 300 ms at 2,000 / 20,000; the API adds at most 50%
over the store query.
Run: .venv/bin/python bench/api.py [--sizes 1000x10000,2000x20000] [--minutes 1|60]
     [--requests N] [--distinct] [--no-roll] [--client stdlib|httpx]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import httpx2

_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [e for e in sys.path if Path(e or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(_ROOT))

from queries.service_map import map_table  # noqa: E402
from queries.window import Window  # noqa: E402
from topology.api.graphql import answers_map  # noqa: E402
from topology.api.graphql.context import Ctx  # noqa: E402
from topology.api.graphql.records import fetch_services  # noqa: E402
from topology.api.graphql.scope import Scope  # noqa: E402
from topology.api.retention import RetentionJob  # noqa: E402
from topology.model import MINUTE, Batch, CallBucket, Service, workload_id  # noqa: E402
from topology.settings import Settings  # noqa: E402
from topology.store.ladybug_store import LadybugStore  # noqa: E402

CLIENTS = 8
# Loading 20,000 edges in one process outgrows the embedded store's default buffer
# pool (when the store has that setting); serving uses the defaults.
LOAD_SETTINGS = ({"embedded_buffer_pool_mb": 4096}
                 if "embedded_buffer_pool_mb" in {f.name for f in fields(Settings)} else {})
OPERATION = (_ROOT / "graphql" / "operations" / "map.graphql").read_text()
SERVER = """
import sys, uvicorn
from topology.api.app import create_app
from topology.settings import Settings
settings = Settings.load({}, data_dir=sys.argv[1])
uvicorn.run(create_app(settings), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def load(settings: Settings, services: int, edges: int, minutes: int, since: int,
         roll: bool = True) -> int:
    """Loads the store; then, when `roll`, runs the serving process's retention job once
    (tiers rolled up to the current bucket). Returns the buckets it rolled into tiers."""
    rng = random.Random(7)
    nodes = [Service(workload_id("bench", f"ns{i % 20}", "Deployment", f"svc{i}"), f"svc{i}",
                     "Deployment", f"ns{i % 20}", "bench", {"team": f"team{i % 7}"}, since)
             for i in range(services)]
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < edges:
        a, b = rng.randrange(services), rng.randrange(services)
        if a != b:
            pairs.add((a, b))
    store = LadybugStore(settings)
    store.init_schema()
    batch: list[CallBucket] = []
    for n, (a, b) in enumerate(sorted(pairs)):
        for minute in range(minutes):
            bucket = CallBucket(nodes[a].id, nodes[b].id, since + minute * MINUTE, MINUTE,
                                "http", "GET", f"/api/{n % 50}")
            for i in range(3):
                bucket.record(5.0 + (n + i) % 200, error=(n + i) % 17 == 0, status=200)
            batch.append(bucket)
        if len(batch) >= 5_000:  # small transactions: the buffer pool is bounded
            store.apply(Batch(f"load-{n}", nodes, batch), now=since + minutes * MINUTE)
            batch = []
    store.apply(Batch("load-last", nodes, batch), now=since + minutes * MINUTE)
    tiered = 0
    if roll:
        report = RetentionJob(store, settings.retention_interval).run_once()
        assert report is not None, "the retention run failed (see the log)"
        tiered = report.tiered
    store.close()
    return tiered


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def concurrently(call: Callable[[], None], requests: int,
                 setup: Callable[[], None] | None = None) -> list[float]:
    """Each of CLIENTS threads runs `call` requests/CLIENTS times; latencies in seconds.

    `setup` runs first in every thread, untimed (an HTTP client per thread: building
    eight httpx clients at once takes a few hundred milliseconds of the clients' own
    GIL, which is not the API's time); the threads then start together."""
    latencies: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(CLIENTS)

    def client() -> None:
        if setup is not None:
            setup()
        ready.wait()
        for _ in range(requests // CLIENTS):
            started = time.perf_counter()
            call()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def over_http(
    data_dir: str, window: dict, requests: int, distinct: bool = False,
    client: str = "stdlib",
) -> tuple[list[float], float, int, int]:
    """Latencies from CLIENTS concurrent clients, and the median of one client alone."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, data_dir, str(port)], cwd=_ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx2.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                time.sleep(0.1)
        body = {"query": OPERATION, "operationName": "ServiceMap",
                "variables": {"window": window}}
        local = threading.local()
        clients = iter(range(1_000_000))

        def setup() -> None:
            if getattr(local, "post", None) is None:
                mine = body if not distinct else {
                    **body, "variables": {**body["variables"], "client": next(clients)}}
                local.post = (_httpx_poster(url, mine) if client == "httpx"
                              else _stdlib_poster(port, mine))

        def call() -> None:
            # the clients share the server's two cores: they check the answer's shape
            # without decoding it, so their own JSON parsing is not timed as the API's
            setup()
            status, content = local.post()
            assert status == 200
            assert content.startswith(b'{"data":{"serviceMap"'), content[:300]
            assert content.endswith(b'"truncated":false}}}'), content[-600:]
            local.content = content

        call()
        answer = json.loads(local.content)
        assert "errors" not in answer, answer["errors"]
        answer = answer["data"]["serviceMap"]
        latencies = concurrently(call, requests, setup)
        return latencies, single_ms(call), len(answer["services"]), len(answer["edges"])
    finally:
        server.terminate()
        server.wait(30)


Poster = Callable[[], tuple[int, bytes]]


def _stdlib_poster(port: int, body: dict) -> Poster:
    """POSTs over one kept-alive connection of the standard library's HTTP client,
    which reads a body of known length in one call: reading a 7 MB answer costs it
    a few milliseconds, where httpx spends 20-30 ms of the clients' GIL on it (eight
    httpx clients reading the same fixed 7 MB body from a bare uvicorn app took p50
    260 / p95 390 ms, against 40 / 55 ms with this client)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}

    def post() -> tuple[int, bytes]:
        for attempt in (1, 2):
            try:
                connection.request("POST", "/graphql", body=data, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            except ConnectionError:  # the server closed the idle kept-alive connection
                connection.close()  # the next request opens a new one
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")
    return post


def _httpx_poster(url: str, body: dict) -> Poster:
    client = httpx2.Client(base_url=url, timeout=120)

    def post() -> tuple[int, bytes]:
        response = client.post("/graphql", json=body)
        return response.status_code, response.content
    return post


def single_ms(call: Callable[[], object], repeat: int = 5) -> float:
    """Median milliseconds of `call` run alone, `repeat` times."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def store_alone(
    settings: Settings, window: Window, requests: int
) -> tuple[list[float], float, float]:
    """The store reads alone (from CLIENTS threads, and the median of one alone), and the
    median of the whole answer object computed in-process (reads, folding, building)."""
    store = LadybugStore(settings)
    compiled = Scope().compile("")

    def call() -> None:
        table = map_table(store, compiled, window)
        assert table is not None
        fetch_services(store, set(table.column("client").to_pylist())
                       | set(table.column("server").to_pylist()))

    call()
    single = single_ms(call)
    latencies = concurrently(call, requests)
    ctx = Ctx(store, settings, Scope(), time.time)
    answer = single_ms(lambda: answers_map.service_map(ctx, window, ""))
    store.close()
    return latencies, single, answer


ASGI = """
import asyncio, json, statistics, sys, time
from topology.api.app import create_app
from topology.settings import Settings
app = create_app(Settings.load({}, data_dir=sys.argv[1]))
body = sys.argv[2].encode()

async def post():
    sent, received = [], False

    async def receive():
        nonlocal received
        if received:
            await asyncio.Event().wait()  # the client never leaves
        received = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    await app({"type": "http", "method": "POST", "path": "/graphql", "raw_path": b"/graphql",
               "query_string": b"", "root_path": "",
               "headers": [(b"content-type", b"application/json")],
               "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "scheme": "http",
               "http_version": "1.1", "asgi": {"version": "3.0"}}, receive, send)
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert content.startswith(b'{"data":{"serviceMap"'), content[:300]

async def main():
    for _ in range(3):  # warm, as the server is after the clients' requests
        await post()
    times = []
    for _ in range(5):
        started = time.perf_counter()
        await post()
        times.append(time.perf_counter() - started)
    print(statistics.median(times) * 1000)
    app.state.ingest.close(30)
    app.state.store.close()

asyncio.run(main())
"""


def asgi_single_ms(data_dir: str, body: dict) -> float:
    """Median milliseconds of one POST /graphql through the real app without a socket, in
    a process of its own like the server's (middleware, single flight, Strawberry, the
    answer, the JSON encoding)."""
    out = subprocess.run([sys.executable, "-c", ASGI, data_dir, json.dumps(body)], cwd=_ROOT,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000x10000,2000x20000")
    parser.add_argument("--minutes", type=int, default=1)
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--distinct", action="store_true",
                        help="a different request body per client: nothing shared")
    parser.add_argument("--client", choices=("stdlib", "httpx"), default="stdlib",
                        help="the load clients' HTTP library (httpx: the figures before "
                        "22 Nov 2026, mostly the clients' own reading time)")
    parser.add_argument("--no-roll", dest="roll", action="store_false",
                        help="leave the tiers as loaded (never rolled): a window longer than "
                        "the window cache's MAX_STARTS minutes is read raw from the buckets")
    args = parser.parse_args()
    for size in args.sizes.split(","):
        services, edges = (int(x) for x in size.split("x"))
        since = int(time.time()) // 60 * 60 - args.minutes * MINUTE
        window = Window(since, since + args.minutes * MINUTE)
        with tempfile.TemporaryDirectory() as data_dir:
            settings = Settings.load({}, data_dir=data_dir, **LOAD_SETTINGS)
            started = time.perf_counter()
            tiered = load(settings, services, edges, args.minutes, since, args.roll)
            loaded = time.perf_counter() - started
            iso = {"from": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(window.since)),
                   "to": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(window.until))}
            http, http_single, got_services, got_edges = over_http(
                data_dir, iso, args.requests, args.distinct, args.client)
            asgi_single = asgi_single_ms(data_dir, {
                "query": OPERATION, "operationName": "ServiceMap", "variables": {"window": iso}})
            alone, single, answer_single = store_alone(settings, window, args.requests)
        api_p50, store_p50 = pct(http, 0.5), pct(alone, 0.5)
        print(json.dumps({
            "services": services, "edges": edges, "minutes": args.minutes,
            "answer": {"services": got_services, "edges": got_edges},
            "distinct": args.distinct, "client": args.client,
            "rolled": args.roll, "tiered": tiered, "load_s": round(loaded, 1),
            "clients": CLIENTS, "requests": len(http),
            "http_p50_ms": round(api_p50, 1), "http_p95_ms": round(pct(http, 0.95), 1),
            "store_p50_ms": round(store_p50, 1), "store_p95_ms": round(pct(alone, 0.95), 1),
            "http_single_ms": round(http_single, 1), "store_single_ms": round(single, 1),
            "answer_single_ms": round(answer_single, 1),
            "asgi_single_ms": round(asgi_single, 1),
            "api_over_store_p50": round(api_p50 / store_p50 - 1, 2),
            "api_over_store_single": round(http_single / single - 1, 2),
            "target": "p95 <= 300 ms at 2000/20000; API adds <= 50% over the store",
        }))


if __name__ == "__main__":
    main()
