"""`topology export`: the map of a store filled by real ingestion, as diagrams."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.topology.ingest.delivery_helpers import T0, batch
from topology.cli_export import export
from topology.ingest.pipeline import Ingestor
from topology.settings import Settings
from topology.store.ladybug_store import LadybugStore

NOW = str(int(T0) + 600)
ODD = {"batch_id": "odd", "agent": "n", "calls": [{
    "timestamp": T0, "side": "client",
    "source": {"workload": {"name": 'we"ird\\x', "kind": "Process", "host": "h1"}},
    "destination": {"service": "api.stripe.com"}, "protocol": "http", "status": 200,
    "duration_ms": 3}]}

MERMAID = """\
flowchart LR
    s0(["api.stripe.com"])
    s1["shop/backend-0"]
    s2["shop/backend-1"]
    s3["shop/frontend"]
    s4["we#quot;ird\\x"]
    s3 -->|"http · 20 req · 20.0% err · p99 7.4 ms"| s1
    s3 -->|"http · 20 req · p99 7.4 ms"| s2
    s4 -->|"http · 1 req · p99 2.99 ms"| s0
    linkStyle 0 stroke:#d32f2f,stroke-width:2px
"""

DOT = """\
digraph topology {
    rankdir=LR;
    node [shape=box, style=rounded];
    s0 [label="api.stripe.com", style=dashed];
    s1 [label="shop/backend-0"];
    s2 [label="shop/backend-1"];
    s3 [label="shop/frontend"];
    s4 [label="we\\"ird\\\\x"];
    s3 -> s1 [label="http · 20 req · 20.0% err · p99 7.4 ms", color="#d32f2f"];
    s3 -> s2 [label="http · 20 req · p99 7.4 ms"];
    s4 -> s0 [label="http · 1 req · p99 2.99 ms"];
}
"""


@pytest.fixture
def data_dir(tmp_path: Path) -> str:
    settings = Settings.load({}, data_dir=str(tmp_path / "data"))
    with LadybugStore(settings) as store:
        store.init_schema()
        ingestor = Ingestor(store, settings)
        ingestor.ingest(batch("shop", 40, servers=2))
        ingestor.ingest(ODD)
    return settings.data_dir or ""


def _export(data_dir: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(export, ["--data-dir", data_dir, "--now", NOW, *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(("fmt", "expected"), [("mermaid", MERMAID), ("dot", DOT)])
def test_diagram(data_dir: str, fmt: str, expected: str) -> None:
    assert _export(data_dir, "--format", fmt) == (0, expected)


def test_json_and_filter(data_dir: str) -> None:
    code, output = _export(data_dir, "--format", "json", "--filter",
                           "server.kind = Deployment")
    assert code == 0
    document = json.loads(output)
    assert document["window"] == {"since": int(NOW) - 3600, "until": int(NOW)}
    assert [(e["client"], e["server"], e["requests"], e["errors"]) for e in document["edges"]] == [
        ("k8s:/shop/Deployment/frontend", "k8s:/shop/Deployment/backend-0", 20, 4),
        ("k8s:/shop/Deployment/frontend", "k8s:/shop/Deployment/backend-1", 20, 0),
    ]
    assert [s["name"] for s in document["services"]] == ["backend-0", "backend-1", "frontend"]


def test_window_without_traffic_is_an_empty_map(data_dir: str) -> None:
    assert _export(data_dir, "--last", "5m", "--now", str(int(T0) - 3600)) == (
        0, "flowchart LR\n")


def test_output_file(data_dir: str, tmp_path: Path) -> None:
    target = tmp_path / "map.mmd"
    code, output = _export(data_dir, "-o", str(target))
    assert code == 0
    assert "wrote 5 services and 3 edges" in output
    assert target.read_text() == MERMAID


@pytest.mark.parametrize(("args", "says"), [
    (("--filter", "server.namespace ="), "Invalid value for --filter: missing value"),
    (("--filter", "server.namespce = shop"), "unknown field 'server.namespce'"),
    (("--last", "soon"), "Invalid value for --last: 'soon' is not a duration"),
    (("--format", "png"), "'png' is not one of"),
])
def test_bad_arguments(data_dir: str, args: tuple[str, ...], says: str) -> None:
    code, output = _export(data_dir, *args)
    assert code == 2
    assert says in output
