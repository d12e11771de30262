"""Rows handed to LadybugDB through the writer's staging file come back as they were."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ladybug
import pytest

from topology.settings import Settings
from topology.store.base import StoreError
from topology.store.ladybug_rows import Rows, Staging, Writer, columns, records, statement
from topology.store.ladybug_store import LadybugStore

TABLE = "CREATE NODE TABLE T(id INT64 PRIMARY KEY, s STRING, x DOUBLE, l STRING[])"
SCHEMA = (("id", "INT64"), ("s", "STRING"), ("x", "DOUBLE"), ("l", "STRING[]"))
CREATE = "LOAD FROM $rows CREATE (:T {id: id, s: s, x: x, l: l})"
READ = "MATCH (t:T) RETURN t.id AS id, t.s AS s, t.x AS x, t.l AS l ORDER BY id"

# strings a CSV file or a list in one could get wrong
STRINGS = ["", " lead", "trail ", 'q"q', "a,b", "line\nbreak", "cr\rx", "crlf\r\nx",
           "tab\tx", "back\\slash", "\\", "nul\x00x", "uni ✓ 漢字 \U0001f600", "\x1f",
           "'single'", "NULL", "null", "\\N", "#comment", "[1,2]", "{a: 1}"]
LISTS = [[], ["a,b", 'q"z'], [""], ["[x]", "{y}", "it's"], ["line\nbreak"]]


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[Writer]:
    db = ladybug.Database(str(tmp_path / "db"))
    raw = ladybug.Connection(db)
    raw.execute(TABLE)
    yield Writer(raw, Staging(tmp_path / "rows"))
    raw.close()
    db.close()


def stored(conn: Writer) -> list[dict]:
    return records(conn.execute(READ))


@pytest.mark.parametrize("lists", [
    [LISTS[i % len(LISTS)] for i in range(len(STRINGS))],  # some empty, some not
    [[] for _ in STRINGS],  # all empty: no parameter to type them
], ids=["mixed_lists", "empty_lists"])
@pytest.mark.parametrize("text", [CREATE, "COPY T FROM $rows"], ids=["load", "copy"])
def test_values_round_trip(conn: Writer, text: str, lists: list[list[str]]) -> None:
    n = len(STRINGS)
    rows = Rows(SCHEMA, {"id": [-(2**62) + i for i in range(n)], "s": STRINGS,
                         "x": [1 / 3 + i for i in range(n)], "l": lists})
    conn.execute(text, {"rows": rows})
    assert stored(conn) == [{"id": -(2**62) + i, "s": STRINGS[i], "x": 1 / 3 + i, "l": lists[i]}
                            for i in range(n)]


def test_other_parameters_pass_along_and_no_file_is_left(conn: Writer) -> None:
    rows = Rows(SCHEMA[:2], {"id": [1, 2], "s": ["a", "b"]})
    conn.execute("LOAD FROM $rows CREATE (:T {id: id, s: s + $suffix, x: $x, l: []})",
                 {"rows": rows, "suffix": "!", "x": 2.5})
    assert [(r["s"], r["x"]) for r in stored(conn)] == [("a!", 2.5), ("b!", 2.5)]
    assert not conn.staging.file.exists()
    assert columns(conn.execute("MATCH (t:T) RETURN t.id AS id ORDER BY id")) == {"id": [1, 2]}


def test_statements_without_rows_go_straight_through(conn: Writer) -> None:
    conn.execute("CREATE (:T {id: $id, s: 'x', x: 0.0, l: []})", {"id": 7})
    assert [r["id"] for r in stored(conn)] == [7]


@pytest.mark.parametrize(("schema", "values", "message"), [
    ((("s", "STRING"),), {"s": ["a", None]}, "column 's' holds None"),
    ((("a", "INT64"), ("b", "INT64")), {"a": [1], "b": [1, 2]}, "differ in length"),
    ((("m", "MAP(STRING, STRING)"),), {"m": [{}]}, "column 'm': no way to send type"),
])
def test_rows_that_cannot_be_sent_are_refused(schema, values, message) -> None:
    with pytest.raises(ValueError, match=message):
        Rows(schema, values)


def test_a_statement_names_its_rows_once() -> None:
    rows = Rows((("id", "INT64"),), {"id": [1]})
    with pytest.raises(ValueError, match=r"names \$rows once"):
        statement("MATCH (t:T) RETURN 1", rows, "LOAD ...")
    assert statement("COPY T FROM $rows", rows, "LOAD X") == "COPY T FROM (LOAD X RETURN id)"


@pytest.mark.parametrize(("name", "bad"), [
    ("it's", "'"), ("back\\slash", "\\"), ('dq"', '"'), ("new\nline", "\n"),
])
def test_a_data_dir_a_statement_cannot_name_is_refused_naming_it(
        tmp_path: Path, name: str, bad: str) -> None:
    with pytest.raises(StoreError, match="choose another TOPOLOGY_DATA_DIR") as raised:
        LadybugStore(Settings.load({}, data_dir=str(tmp_path / name)))
    assert f"has {bad!r} in its path" in str(raised.value)
