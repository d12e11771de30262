"""Column-wise JSON: the bytes orjson writes for the same objects built as dicts.

The executor test compares whole answers on the golden scenario; these cases
push the encoders where that data does not go: values with commas, quotes,
percent signs and non-ASCII text, nulls, empty columns, lists of 0, 1 and
several items, nested objects inside list items; each case again with its
columns as Arrow arrays (chunked, and sliced lists) where Arrow can hold them,
and enum-like columns held as codes (`rows.Coded`).
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
import pytest

from topology.api.graphql import json_columns as jc
from topology.api.graphql.rows import Coded

TEXT = ["a,b", 'say "hi"', "100%s %d %%", "ünï 漢", "", None, "a,b", "\\\",\""]
NUMBERS = [0, -1, 2**53, 1.5, 1e-7, 1e16, float("nan"), None, True, False]
# enough rows, few distinct floats: held by Arrow, each distinct value is encoded once
REPEATED = [[0.0, -0.0, 1 / 3, None, 1e16, 1e-7, 2.5, 3.0][i % 8] for i in range(100)]
DISTINCT = [i / 7 for i in range(100)]


def build(fields: list[tuple[str, str, Any]]) -> jc.Template:
    """fields: (response key, column path, encoder or a nested field list)."""
    builder = jc.TemplateBuilder()
    add(builder, fields)
    return builder.build()


def add(builder: jc.TemplateBuilder, fields: list[tuple[str, str, Any]]) -> None:
    for key, path, how in fields:
        builder.key(key)
        if how == "typename":
            builder.constant(path)
        elif isinstance(how, tuple) and how[0] == "object":
            builder.open()
            add(builder, how[1])
            builder.close()
        elif isinstance(how, tuple) and how[0] == "list":
            builder.nested(path, build(how[1]))
        else:
            builder.leaf(path, how)


def expected(rows: list[dict[str, Any]]) -> bytes:
    return orjson.dumps(rows)


CASES: list[tuple[str, list, dict[str, list], list[dict[str, Any]]]] = [
    ("text", [("s", "s", jc.strings), ("e", "e", jc.each)],
     {"s": TEXT, "e": TEXT},
     [{"s": v, "e": v} for v in TEXT]),
    ("text needing no escapes, and control characters", [("s", "s", jc.strings)],
     {"s": ["plain", "ünï/漢 <>&'", "a\x7f", None, "plain"]},
     [{"s": "plain"}, {"s": "ünï/漢 <>&'"}, {"s": "a\x7f"}, {"s": None}, {"s": "plain"}]),
    ("text with control characters", [("s", "s", jc.strings)],
     {"s": ["tab\there", "nul\x00", "\x1f", "ok"]},
     [{"s": "tab\there"}, {"s": "nul\x00"}, {"s": "\x1f"}, {"s": "ok"}]),
    ("text columns holding other values", [("s", "s", jc.strings)],
     {"s": [1, True, 1.0, "1", None]},
     [{"s": 1}, {"s": True}, {"s": 1.0}, {"s": "1"}, {"s": None}]),
    ("numbers", [("n", "n", jc.numbers)],
     {"n": NUMBERS}, [{"n": v} for v in NUMBERS]),
    ("integers, floats and booleans of one type each", [
        ("i", "i", jc.numbers), ("f", "f", jc.numbers), ("b", "b", jc.numbers)],
     {"i": [0, -1, 2**62, None], "f": [1.5, 1e-7, 1e16, None], "b": [True, False, None, True]},
     [{"i": 0, "f": 1.5, "b": True}, {"i": -1, "f": 1e-7, "b": False},
      {"i": 2**62, "f": 1e16, "b": None}, {"i": None, "f": None, "b": True}]),
    ("numbers that are not", [("n", "n", jc.numbers)],
     {"n": ["1,2", 3]}, [{"n": "1,2"}, {"n": 3}]),
    ("no rows", [("n", "n", jc.numbers), ("s", "s", jc.strings)],
     {"n": [], "s": []}, []),
    ("lists", [("p", "p", jc.lists)],
     {"p": [["http"], [], ["grpc", "http"], ("http",), ["http"]]},
     [{"p": ["http"]}, {"p": []}, {"p": ["grpc", "http"]}, {"p": ["http"]}, {"p": ["http"]}]),
    ("typename and nested object", [
        ("__typename", "Edge", "typename"), ("c", "client", jc.strings),
        ("stats", "", ("object", [("r", "stats.requests", jc.numbers),
                                   ("t", "TrafficStats", "typename")]))],
     {"client": ["x", "y"], "stats.requests": [1, None]},
     [{"__typename": "Edge", "c": "x", "stats": {"r": 1, "t": "TrafficStats"}},
      {"__typename": "Edge", "c": "y", "stats": {"r": None, "t": "TrafficStats"}}]),
    ("lists of objects: 1, 0 and 3 items", [
        ("c", "client", jc.strings),
        ("top", "paths", ("list", [("path", "path", jc.strings),
                                   ("n", "requests", jc.numbers)]))],
     {"client": ["a", "b", "c"], "paths[].path": [["/x"], [], ["/1", "/%s", "/,"]],
      "paths[].requests": [[1], [], [3, 2, 1]]},
     [{"c": "a", "top": [{"path": "/x", "n": 1}]}, {"c": "b", "top": []},
      {"c": "c", "top": [{"path": "/1", "n": 3}, {"path": "/%s", "n": 2},
                         {"path": "/,", "n": 1}]}]),
    ("lists of objects: one item each", [
        ("top", "paths", ("list", [("n", "requests", jc.numbers),
                                   ("in", "", ("object", [("p", "path", jc.strings)]))]))],
     {"paths[].requests": [[1], [2]], "paths[].path": [["%"], ["%%"]]},
     [{"top": [{"n": 1, "in": {"p": "%"}}]}, {"top": [{"n": 2, "in": {"p": "%%"}}]}]),
    ("converted values", [("d", "d", jc.converted(str)), ("h", "h", jc.by_identity(repr))],
     {"d": [1, 2, 1], "h": [None, "x", None]},
     [{"d": "1", "h": "None"}, {"d": "2", "h": "'x'"}, {"d": "1", "h": "None"}]),
    ("converted values equal across types", [("v", "v", jc.converted(repr))],
     {"v": [1, True, 1.0, None]},
     [{"v": "1"}, {"v": "True"}, {"v": "1.0"}, {"v": "None"}]),
    ("converted values that are not hashable", [("v", "v", jc.converted(repr))],
     {"v": [[1], [1], None]}, [{"v": "[1]"}, {"v": "[1]"}, {"v": "None"}]),
    ("repeated and distinct floats, first and last in the row",
     [("r", "r", jc.numbers), ("d", "d", jc.numbers), ("s", "s", jc.strings),
      ("q", "r", jc.numbers)],
     {"r": REPEATED, "d": DISTINCT, "s": [["a", "b"][i % 2] for i in range(100)]},
     [{"r": r, "d": d, "s": ["a", "b"][i % 2], "q": r}
      for i, (r, d) in enumerate(zip(REPEATED, DISTINCT, strict=True))]),
    ("lists of repeated floats", [("p", "p", jc.lists)],
     {"p": [[1.5, 0.25][: i % 3] for i in range(150)]},
     [{"p": [1.5, 0.25][: i % 3]} for i in range(150)]),
    ("converted values of one type, with nulls", [("v", "v", jc.converted(repr))],
     {"v": [None, 2, None, 2]},
     [{"v": "None"}, {"v": "2"}, {"v": "None"}, {"v": "2"}]),
]


@pytest.mark.parametrize(("fields", "columns", "rows"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_template_writes_what_orjson_writes_for_dicts(
        fields: list, columns: dict[str, list], rows: list[dict[str, Any]]) -> None:
    n = len(rows)
    fragment = build(fields).array(columns.__getitem__, n)
    assert orjson.dumps({"list": fragment}) == orjson.dumps({"list": rows})
    assert orjson.loads(orjson.dumps(fragment)) == orjson.loads(expected(rows))


@pytest.mark.parametrize(("columns", "message"), [
    ({"a": [1, 2], "b": [1]}, "holds 1 values for 2 rows"),
    ({"a": [1, 2], "b": [1, 2, 3]}, "holds 3 values for 2 rows"),
])
def test_a_column_of_the_wrong_length_is_an_error(columns: dict[str, list],
                                                  message: str) -> None:
    template = build([("a", "a", jc.numbers), ("b", "b", jc.numbers)])
    with pytest.raises(ValueError, match=message):
        template.array(columns.__getitem__, 2)


def test_items_of_unequal_lists_are_an_error() -> None:
    template = build([("top", "p", ("list", [("a", "a", jc.numbers),
                                               ("b", "b", jc.numbers)]))])
    columns = {"p[].a": [[1, 2]], "p[].b": [[1]]}
    with pytest.raises(ValueError, match=r"column p\[\]\.b: 1 items, 2 expected"):
        template.array(columns.__getitem__, 1)


def arrow(values: list) -> Any:
    """The column as a chunked Arrow array (two chunks), or as it is when Arrow cannot
    hold it with the same Python values (mixed types, tuples, nan)."""
    try:
        array = pa.array(values)
    except (pa.ArrowException, TypeError):
        return values
    if array.to_pylist() != values or any(v != v for v in values if isinstance(v, float)):
        return values
    return pa.chunked_array([array.slice(0, len(values) // 2), array.slice(len(values) // 2)],
                            array.type)


@pytest.mark.parametrize(("fields", "columns", "rows"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_arrow_columns_write_what_their_lists_write(
        fields: list, columns: dict[str, list], rows: list[dict[str, Any]]) -> None:
    held = {path: arrow(values) for path, values in columns.items()}
    fragment = build(fields).array(held.__getitem__, len(rows))
    assert orjson.dumps({"list": fragment}) == orjson.dumps({"list": rows})


def test_sliced_list_arrays_and_coded_columns() -> None:
    """Arrow list columns that do not start at their buffers' start, and a column of
    members held as codes, read the same as their lists."""
    members = ("HEALTHY", "CRITICAL", None)
    paths = pa.array([["/zero"], ["/a", "/b"], [], ["/c"]]).slice(1)
    hits = pa.array([[9], [1, 2], [], [3]]).slice(1)
    protocols = pa.array([["x"], ["http", "grpc"], [], ["http"]]).slice(1)
    template = build([("h", "h", jc.by_identity(str)), ("c", "c", jc.converted(repr)),
                      ("p", "p", jc.lists),
                      ("top", "t", ("list", [("path", "path", jc.strings),
                                             ("n", "n", jc.numbers)]))])
    columns = {"h": Coded(pa.chunked_array([[0, 1], [2]]), members),
               "c": Coded(pa.array([2, 2, 0]), members), "p": protocols,
               "t[].path": paths, "t[].n": hits}
    fragment = template.array(columns.__getitem__, 3)
    assert orjson.loads(orjson.dumps(fragment)) == [
        {"h": "HEALTHY", "c": "None", "p": ["http", "grpc"],
         "top": [{"path": "/a", "n": 1}, {"path": "/b", "n": 2}]},
        {"h": "CRITICAL", "c": "None", "p": [], "top": []},
        {"h": "None", "c": "'HEALTHY'", "p": ["http"], "top": [{"path": "/c", "n": 3}]},
    ]


@pytest.mark.parametrize("array", [
    pa.array(["x", '[{"a":1}]', "y"]).slice(1, 1),
    pa.array(["", "ünï 漢"], pa.large_string()).slice(1),
    pa.array(["[]"]),
], ids=["sliced", "large string", "whole"])
def test_only_text_is_the_one_item(array: pa.Array) -> None:
    assert jc.only_text(array) == array[0].as_py().encode()
