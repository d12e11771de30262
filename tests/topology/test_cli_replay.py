"""`topology replay`: recorded batches into the embedded store through the Ingestor."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.topology.ingest.delivery_helpers import batch, expected_totals, totals
from topology.cli_replay import replay
from topology.settings import Settings
from topology.store.ladybug_store import LadybugStore

BATCHES = [batch(f"r-{n}", 25) for n in range(4)]


def _lines(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def _run(data_dir: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(replay, ["--data-dir", str(data_dir), "--quiet", *args])
    return result.exit_code, result.output


def _totals(data_dir: Path) -> tuple[int, int]:
    with LadybugStore(Settings.load({}, data_dir=str(data_dir))) as store:
        return totals(store)


@pytest.mark.parametrize("layout", ["json lines", "json array", "gzipped lines"])
def test_replay_loads_every_batch_once(tmp_path: Path, layout: str) -> None:
    if layout == "json lines":
        path = _lines(tmp_path / "batches.jsonl", BATCHES)
    elif layout == "json array":
        path = tmp_path / "batches.json"
        path.write_text(json.dumps(BATCHES))
    else:
        path = tmp_path / "batches.jsonl.gz"
        path.write_bytes(gzip.compress(_lines(tmp_path / "x", BATCHES).read_bytes()))
    data = tmp_path / "data"
    assert _run(data, str(path)) == (
        0, "replayed 4 batch(es), 0 already applied, 0 skipped (100 calls counted)\n")
    assert _run(data, str(path))[1].startswith("replayed 0 batch(es), 4 already applied")
    assert _totals(data) == expected_totals(*BATCHES)


def test_invalid_records_are_named_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([
        json.dumps(BATCHES[0]),
        "",
        "{not json",
        json.dumps({"batch_id": "x", "agent": "a", "calls": [{"side": "up"}]}),
        json.dumps(BATCHES[1]),
    ]))
    code, output = _run(tmp_path / "data", str(path))
    assert code == 1
    assert f"skipped {path}:3: not JSON" in output
    assert f"skipped {path}:4: $.calls[0]" in output
    assert "replayed 2 batch(es), 0 already applied, 2 skipped" in output
    assert _totals(tmp_path / "data") == expected_totals(BATCHES[0], BATCHES[1])


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    code, output = _run(tmp_path / "data", str(tmp_path / "nope.jsonl"))
    assert code == 2
    assert "does not exist" in output


def test_otlp_json_lines_are_paired_and_replayed_once(tmp_path: Path) -> None:
    from tests.topology.api.test_traces_endpoint import API, EDGES, STRIPE, WEB, export

    path = _lines(tmp_path / "traces.jsonl", [export(n) for n in range(3)])
    data = tmp_path / "data"
    code, output = _run(data, str(path))
    assert code == 0, output
    assert "6 calls counted" in output
    code, output = _run(data, str(path))
    assert (code, output.split(",")[0]) == (0, "replayed 0 batch(es)")
    with LadybugStore(Settings.load({}, data_dir=str(data))) as store:
        edges = [(r["client"], r["server"], int(r["requests"])) for r in store.read(EDGES)]
    assert edges == [(WEB, STRIPE, 3), (WEB, API, 3)]
