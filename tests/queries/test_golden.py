"""Generated Cypher compared with the golden files in tests/queries/golden/.

After an intended change, regenerate with TOPOLOGY_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.queries.statements import NAMED
from topology.store.base import GraphStore
from topology.store.statement import Dialect, Statement

GOLDEN = Path(__file__).parent / "golden"


def render(statement: Statement) -> str:
    return "".join(f"// {d.value}\n{statement.text(d)}\n" for d in Dialect)


@pytest.mark.parametrize(("name", "statement", "params"), NAMED, ids=[n for n, _, _ in NAMED])
def test_generated_cypher_matches_golden(name: str, statement: Statement, params: dict) -> None:
    path = GOLDEN / f"{name}.cypher"
    if os.environ.get("TOPOLOGY_UPDATE_GOLDEN"):
        path.write_text(render(statement), encoding="utf-8")
    assert render(statement) == path.read_text(encoding="utf-8")


def test_every_golden_file_belongs_to_a_statement() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.cypher")) == sorted(n for n, _, _ in NAMED)


@pytest.mark.parametrize(("name", "statement", "params"), NAMED, ids=[n for n, _, _ in NAMED])
def test_ladybug_text_runs(
    shop_store: GraphStore, name: str, statement: Statement, params: dict
) -> None:
    assert isinstance(shop_store.read(statement, params), list)
