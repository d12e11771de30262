"""Build helper processes: the same prepared batch as in the worker, errors carried back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.topology.ingest.delivery_helpers import batch
from topology.ingest import claims, offload
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
    with pytest.raises(InvalidBatch, match=message):
        pool.prepare(raw)


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
    executor = pool._executor
    assert executor is not None
    [pid] = list(executor._processes)  # the one helper (private: no public accessor)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(BuildPoolBroken, match="a build helper process died"):
        for _ in range(100):  # the pool notices the death on its next submission at most
            pool.prepare(raw)
    assert pool.prepare(raw).calls == 10


@pytest.mark.parametrize(("environ", "expected"),
                         [({}, 1), ({offload.PROCESSES_ENV: "0"}, 0),
                          ({offload.PROCESSES_ENV: "2"}, 2)])
def test_processes_from_environment(environ: dict[str, str], expected: int) -> None:
    assert offload.processes(environ) == expected


@pytest.mark.parametrize("raw", ["-1", "two"])
def test_bad_process_count_names_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match=f"{offload.PROCESSES_ENV}: '{raw}'"):
        offload.processes({offload.PROCESSES_ENV: raw})


def test_a_build_helper_imports_neither_arrow_nor_the_database() -> None:
    """A helper process imports offload.py and what it needs to build: pyarrow (with
    numpy) and ladybug would add about 40 MB to its RSS for nothing."""
    code = ("import sys, topology.ingest.offload; "
            "print(sorted(m for m in ('pyarrow', 'numpy', 'ladybug') if m in sys.modules))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True)
    assert found.stdout.strip() == "[]"


HEAVY_MAIN = """
import sys
from pathlib import Path

import topology.cli  # as the `topology` command: every subcommand, and pyarrow
from topology.ingest import claims
from topology.ingest.offload import BuildPool
from topology.settings import Settings


def run() -> None:
    pool = BuildPool(Settings(redis_url=sys.argv[1]))
    assert pool.prepare(claims.encode({"batch_id": "m", "agent": "a", "calls": []})).calls == 0
    [pid] = list(pool._executor._processes)
    maps = Path(f"/proc/{pid}/maps").read_text()
    print("main", "libarrow" in Path("/proc/self/maps").read_text(),
          "helper", "libarrow" in maps)
    pool.close()


if __name__ == "__main__":
    run()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_build_helper_does_not_run_the_workers_main_module(
    tmp_path: Path, redis_url: str
) -> None:
    """Started by the `topology` command, the worker's __main__ loads pyarrow; a helper
    spawned from it must not import that main module again (about 30 MB)."""
    main = tmp_path / "heavy_main.py"
    main.write_text(HEAVY_MAIN)
    found = subprocess.run([sys.executable, str(main), redis_url], capture_output=True,
                           text=True, check=True, cwd=Path(__file__).parents[3])
    assert found.stdout.split() == ["main", "True", "helper", "False"]
