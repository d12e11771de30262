"""The exported schema and the operation documents against the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphql import parse, validate
from tests.topology.api.graphql.support import OPERATIONS_DIR, operations
from topology.api.graphql import build_schema
from topology.api.graphql.export import DEFAULT_PATH, main, sdl
from topology.settings import Settings

DOCUMENTS = sorted(OPERATIONS_DIR.glob("*.graphql"))
API_TESTS = ("test_queries.py", "test_scope.py")


def test_exported_schema_matches_the_code() -> None:
    assert DEFAULT_PATH.read_text() == sdl(), (
        "graphql/schema.graphql differs from the code: run python -m topology.api.graphql.export")


def test_export_writes_the_sdl(tmp_path: Path) -> None:
    assert main([str(tmp_path / "schema.graphql")]) == 0
    assert (tmp_path / "schema.graphql").read_text() == sdl()


@pytest.mark.parametrize("path", DOCUMENTS, ids=[p.name for p in DOCUMENTS])
def test_operation_document_is_valid_against_the_schema(path: Path) -> None:
    schema = build_schema(Settings())._schema
    assert validate(schema, parse(path.read_text())) == []


def test_every_operation_is_used_by_the_api_tests() -> None:
    here = Path(__file__).parent
    sources = "".join((here / name).read_text() for name in API_TESTS)
    unused = [name for name in operations() if f'"{name}"' not in sources]
    assert unused == []
