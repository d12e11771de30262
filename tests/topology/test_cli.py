"""`topology store ...` through click's runner, on a real embedded store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from topology.cli import main
from topology.model import Batch, CallBucket, Service
from topology.settings import Settings
from topology.store.ladybug_store import LadybugStore


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env or {})
    return result.exit_code, result.output


def test_store_init_is_idempotent_and_stats_count(tmp_path: Path) -> None:
    for _ in range(2):
        code, out = run("--data-dir", str(tmp_path), "store", "init")
        assert code == 0
        assert out.strip() == f"schema ready in embedded store {tmp_path}/topology.lbug"
    store = LadybugStore(Settings.load({}, data_dir=str(tmp_path)))
    row = CallBucket("process:h/a", "process:h/b", 60, 60, "http")
    row.record(1.0, error=False, status=200)
    store.apply(Batch("one", [Service("process:h/a", "a", "Process", seen=60),
                              Service("process:h/b", "b", "Process", seen=60)], [row]))
    store.close()

    code, out = run("store", "stats", "--json", env={"TOPOLOGY_DATA_DIR": str(tmp_path)})
    assert code == 0
    assert json.loads(out) == {"services": 2, "pairs": 1, "minute_buckets": 1,
                               "hour_buckets": 0, "batches": 1}
    code, out = run("--data-dir", str(tmp_path), "store", "retention", "--now", str(10**7))
    assert code == 0 and json.loads(out)["rolled_up"] == 1


@pytest.mark.parametrize(("args", "env", "message"), [
    (["store", "stats"], {"TOPOLOGY_STORE": "neo4j"}, "TOPOLOGY_NEO4J_URI"),
    (["store", "stats"], {"TOPOLOGY_QUERY_TIMEOUT": "soon"}, "TOPOLOGY_QUERY_TIMEOUT"),
    (["--store", "mysql", "store", "init"], {}, "--store"),
])
def test_bad_settings_are_refused_naming_the_key(
    args: list[str], env: dict[str, str], message: str, tmp_path: Path
) -> None:
    code, out = run(*args, env={"TOPOLOGY_DATA_DIR": str(tmp_path), **env})
    assert code == 2 and message in out


def test_a_store_owned_by_another_process_is_named(tmp_path: Path) -> None:
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from topology.settings import Settings\n"
         "from topology.store.ladybug_store import LadybugStore\n"
         "store = LadybugStore(Settings.load({}, data_dir=sys.argv[1]))\n"
         "print('open', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        code, out = run("--data-dir", str(tmp_path), "store", "stats")
        assert code == 1 and f"{tmp_path}/topology.lbug" in out and "another process" in out
    finally:
        holder.kill()
        holder.wait()
