"""Build helper processes: the same prepared batch as in the worker, errors carried back."""

from __future__ import annotations

import ast
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from tests.topology.ingest.delivery_helpers import batch
from topology.ingest import claims, offload, redis_lite
from topology.ingest.dns import RedisDnsStore
from topology.ingest.leases import RedisLeaseStore
from topology.ingest.offload import BuildPool, BuildPoolBroken
from topology.ingest.paths import PathFolder
from topology.ingest.pipeline import InvalidBatch, prepare
from topology.settings import Settings, SettingsError


@pytest.fixture
def pool_settings(redis_url: str) -> Settings:
    return Settings(redis_url=redis_url)


@pytest.fixture
def pool(pool_settings: Settings) -> Iterator[BuildPool]:
    pool = BuildPool(pool_settings)
    yield pool
    pool.close()


def test_a_helper_prepares_what_the_worker_would(
    pool: BuildPool, pool_settings: Settings, redis_url: str
) -> None:
    payload = batch("b-1", 300, servers=4, minutes=3)
    payload["calls"][0]["trace_id"] = "t-1"
    payload["calls"][1]["destination"] = {"ip": "203.0.113.9"}  # no lease: external
    prepared = pool.prepare(claims.encode(payload))

    client = redis.Redis.from_url(redis_url)
    here = prepare(payload, RedisLeaseStore(client, pool_settings.batch_marker_retention,
                                            time.time),
                   RedisDnsStore(client, pool_settings.dns_retention), PathFolder(),
                   pool_settings.bucket_width)
    assert prepared == here
    assert (prepared.batch_id, prepared.calls, len(prepared.placed)) == ("b-1", 300, 300)
    assert {s.id for s in prepared.services} >= {key[1] for key in prepared.placed.keys}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (claims.encode({"batch_id": "p", "agent": "a", "calls": [{"timestamp": "soon"}]}),
         r"\$\.calls\[0\]"),
        (b'{"batch_id": ', "stored payload is not JSON"),
    ],
)
def test_an_invalid_batch_is_reported_from_the_helper(
    pool: BuildPool, raw: bytes, message: str
) -> None:
    with pytest.raises(InvalidBatch, match=message) as caught:
        pool.prepare(raw)
    with pytest.raises(InvalidBatch) as here:  # worded as in the worker (the helper
        prepare(claims.decode(raw), None, None, None, 60)  # type: ignore[arg-type]
    assert str(caught.value) == str(here.value)  # decodes without claims.py)


def test_a_helper_reads_a_claimed_payload_itself(pool: BuildPool, redis_url: str) -> None:
    """The worker hands over only the key; the payload stays stored for a retry."""
    payload = batch("b-3", 200, servers=3)
    client = redis.Redis.from_url(redis_url)
    key = claims.put(client, "t-3", payload, 60)
    assert pool.prepare_claimed(key) == pool.prepare(claims.encode(payload))
    assert client.get(key) == claims.encode(payload)


@pytest.mark.parametrize(
    ("stored", "error", "message"),
    [
        (None, claims.PayloadGone, "topology:ingest:payload:t-4"),
        (b'{"batch_id": ', InvalidBatch, "stored payload is not JSON"),
        (claims.encode({"batch_id": "p", "agent": "a", "calls": [{"timestamp": "soon"}]}),
         InvalidBatch, r"\$\.calls\[0\]"),
    ],
)
def test_a_claimed_payload_missing_or_invalid_is_reported_from_the_helper(
    pool: BuildPool, redis_url: str, stored: bytes | None, error: type[Exception],
    message: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    key = claims.key_for("t-4")
    if stored is not None:
        client.set(key, stored)
    with pytest.raises(error, match=message):
        pool.prepare_claimed(key)


def test_a_helper_that_cannot_reach_redis_says_so() -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = BuildPool(Settings(redis_url=f"redis://127.0.0.1:{port}/0"))
    try:
        with pytest.raises(claims.PayloadUnreadable, match="cannot read topology:ingest:"):
            pool.prepare_claimed(claims.key_for("t-5"))
    finally:
        pool.close()


def test_a_killed_helper_fails_its_batch_and_the_next_gets_a_new_one(pool: BuildPool) -> None:
    raw = claims.encode(batch("b-2", 10))
    assert pool.prepare(raw).calls == 10
    [pid] = pool.helper_pids()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(BuildPoolBroken, match=f"a build helper process died \\(pid {pid}"):
        pool.prepare(raw)  # handed to the killed helper, which never answers
    assert pool.prepare(raw).calls == 10
    [new] = pool.helper_pids()
    assert new != pid


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_helper_leaves_ctrl_c_to_its_worker(pool: BuildPool) -> None:
    """SIGINT reaches a terminal's whole process group: the helper ignores it."""
    assert pool.prepare(claims.encode(batch("b-9", 10))).calls == 10
    [pid] = pool.helper_pids()
    [ignored] = [line.split()[1] for line in Path(f"/proc/{pid}/status").read_text()
                 .splitlines() if line.startswith("SigIgn:")]
    assert int(ignored, 16) & (1 << (signal.SIGINT - 1))


def test_another_error_in_the_helper_keeps_its_type_and_message() -> None:
    """Redis gone while resolving a batch handed over as bytes: the helper's Redis
    client's own error (redis_lite.py), with the helper's traceback as its cause."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = BuildPool(Settings(redis_url=f"redis://127.0.0.1:{port}/0"))
    try:
        with pytest.raises(redis_lite.ConnectionFailed, match=f"127.0.0.1:{port}") as caught:
            pool.prepare(claims.encode(batch("b-6", 10)))
    finally:
        pool.close()
    assert isinstance(caught.value.__cause__, offload.RemoteTraceback)
    assert "build_helper.py" in str(caught.value.__cause__)


@pytest.mark.parametrize("helpers", [1, 2])
def test_many_task_threads_share_the_helpers(
    pool_settings: Settings, redis_url: str, helpers: int
) -> None:
    """16 task threads at once, as in the worker: each gets its own batch back."""
    client = redis.Redis.from_url(redis_url)
    keys = {f"c-{n}": claims.put(client, f"t-c-{n}", batch(f"c-{n}", 20 + n), 60)
            for n in range(16)}
    pool = BuildPool(pool_settings, helpers)
    try:
        with ThreadPoolExecutor(16) as threads:
            done = dict(zip(keys, threads.map(pool.prepare_claimed, keys.values()),
                            strict=True))
        assert len(pool.helper_pids()) <= helpers
    finally:
        pool.close()
    assert {n: (p.batch_id, p.calls) for n, p in done.items()} == {
        f"c-{n}": (f"c-{n}", 20 + n) for n in range(16)}


def test_close_waits_for_the_helpers_to_exit(pool: BuildPool) -> None:
    assert pool.prepare(claims.encode(batch("b-7", 10))).calls == 10
    pids = pool.helper_pids()
    pool.close()
    assert pool.helper_pids() == []
    assert not [pid for pid in pids if _alive(pid)]
    with pytest.raises(BuildPoolBroken, match="closed"):
        pool.prepare(claims.encode(batch("b-8", 10)))


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, not yet reaped by its parent, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize(("environ", "expected"),
                         [({}, 1), ({offload.PROCESSES_ENV: "0"}, 0),
                          ({offload.PROCESSES_ENV: "2"}, 2)])
def test_processes_from_environment(environ: dict[str, str], expected: int) -> None:
    assert offload.processes(environ) == expected


@pytest.mark.parametrize("raw", ["-1", "two"])
def test_bad_process_count_names_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match=f"{offload.PROCESSES_ENV}: '{raw}'"):
        offload.processes({offload.PROCESSES_ENV: raw})


HEAVY = ("pyarrow", "numpy", "ladybug", "kombu", "celery", "billiard", "yaml",
         "multiprocessing", "concurrent.futures.process", "jsonschema", "redis", "asyncio",
         "ssl")

HELPER_AFTER_A_BATCH = """
import json, socket, sys, threading
import orjson
from topology.ingest import build_helper, frames
from topology.settings import Settings

ours, theirs = socket.socketpair()
helper = threading.Thread(target=build_helper.serve, args=(theirs,))
helper.start()
frames.send(ours, frames.dumps(Settings(redis_url=sys.argv[1])))
frames.send(ours, frames.dumps(("payload", orjson.dumps(json.loads(sys.argv[2])))))
reply = frames.loads(frames.receive(ours))
assert reply[0] == "ok" and reply[1].calls == 50, reply
ours.close()
helper.join()
print(sorted(sys.modules))
"""


def test_a_build_helper_imports_only_what_a_build_needs(redis_url: str) -> None:
    """pyarrow (with numpy) and ladybug would add about 40 MB to a helper's RSS,
    redis-py (with asyncio and ssl) 18 MB, kombu (and yaml with it), celery and
    multiprocessing a few more, all for nothing."""
    code = ("import sys, topology.ingest.build_helper; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True)
    assert found.stdout.strip() == "[]"
    # Nor once it built a valid batch (its loop run in a thread of a new interpreter).
    payload = json.dumps(batch("h", 50))  # the test's helpers import pyarrow: not there
    built = subprocess.run([sys.executable, "-c", HELPER_AFTER_A_BATCH, redis_url, payload],
                           capture_output=True, text=True, check=True,
                           cwd=Path(__file__).parents[3])
    modules = ast.literal_eval(built.stdout)
    assert "topology.ingest.pipeline" in modules
    assert not [m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY]


HEAVY_MAIN = """
import os
import sys
from pathlib import Path

import pyarrow  # noqa: F401  (a heavy __main__: the helper must not load it again)
import topology.cli_worker  # as `topology worker` runs: click, redis and Celery
from topology.ingest import claims
from topology.ingest.offload import BuildPool
from topology.settings import Settings


def children() -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if (entry.name.isdigit() and int((entry / "stat").read_text()
                                             .rsplit(")", 1)[1].split()[1]) == os.getpid()):
                found[int(entry.name)] = (entry / "cmdline").read_text().replace("\\0", " ")
        except OSError:
            pass
    return found


def run() -> None:
    pool = BuildPool(Settings(redis_url=sys.argv[1]))
    assert pool.prepare(claims.encode({"batch_id": "m", "agent": "a", "calls": []})).calls == 0
    [pid] = pool.helper_pids()
    maps = Path(f"/proc/{pid}/maps").read_text()
    print("main", "libarrow" in Path("/proc/self/maps").read_text(),
          "helper", "libarrow" in maps)
    for child, cmdline in sorted(children().items()):
        print("child", "helper" if child == pid else "other", cmdline.split()[1:4])
    pool.close()


if __name__ == "__main__":
    run()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_build_helper_is_the_workers_only_child_and_runs_none_of_its_main(
    tmp_path: Path, redis_url: str
) -> None:
    """Whatever the worker's __main__ loads (pyarrow here), its helper must not
    (pyarrow alone: about 30 MB), and it starts no other process (multiprocessing's
    resource tracker: 13 MB)."""
    main = tmp_path / "heavy_main.py"
    main.write_text(HEAVY_MAIN)
    found = subprocess.run([sys.executable, str(main), redis_url], capture_output=True,
                           text=True, check=True, cwd=Path(__file__).parents[3])
    assert found.stdout.splitlines() == [
        "main True helper False",
        "child helper ['-P', '-m', 'topology.ingest.build_helper']"]
