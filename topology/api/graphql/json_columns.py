"""JSON straight from columns: a `Columns` list encoded without a dict per item.

The lean executor (`executor.py`) can project a map's 20,000 edges into
response dicts for orjson to encode, but building those dicts (about 80,000
containers) costs more than encoding them. When the response is encoded with
orjson anyway (the HTTP view), a list held as `Columns` is encoded here
instead, into one pre-encoded `orjson.Fragment` that orjson copies as it is.
The work per row runs in Arrow's compute functions (C++, without the GIL),
the Python work is per column or per distinct value:

- every selected leaf column becomes one Arrow array of JSON texts, one per
  row (`json_texts.py`: numbers cast or encoded by one orjson call over the
  column, strings and other values once per distinct value);
- each row's object is the element-wise join of fixed pieces (keys, braces,
  commas, `__typename`: computed once from the selection) and the rows'
  texts; nested objects are flattened into that template, and lists of
  objects inside a row (columns `top_paths[].path`) are encoded the same way
  over all rows' items, then joined per row;
- the rows are joined into the array in one more Arrow call, whose bytes
  are the fragment.

Columns may be Python lists or Arrow arrays (`Columns.raw`: what the answer
built, unconverted). The bytes are the ones orjson writes for the response
dicts of the same selection: same keys in the same order, same values
(tests/topology/api/graphql/test_executor.py compares both for every
operation document; test_json_columns.py for lists and Arrow arrays alike).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from topology.api.graphql.json_texts import (
    ARRAY_ITEMS,
    Column,
    Encode,
    as_arrow,
    as_python,
    by_identity,
    converted,
    each,
    joined,
    json_text,
    lists,
    numbers,
    strings,
    text_array,
    whole,
    with_piece,
)

__all__ = ["Encode", "Template", "TemplateBuilder", "by_identity", "converted", "each", "lists",
           "numbers", "strings"]
Get = Callable[[str], Column]  # a column by attribute path
Value = Callable[[Get, int], pa.Array]  # the JSON texts of n rows' values


@dataclass(frozen=True)
class Template:
    """One JSON object per row: fixed pieces around the rows' encoded values
    (`pieces` has one more item than `values`)."""

    pieces: tuple[str, ...]
    values: tuple[Value, ...]
    count_by: str | None  # a column path with one value per row: what items are counted by

    def rows(self, get: Get, n: int) -> pa.Array:
        """Each row's object, as an Arrow array of texts. A value encoded once per
        distinct value (a dictionary array) takes the piece before it into its
        distinct texts: one argument fewer for the join of every row."""
        if not self.values:
            return text_array([self.pieces[0]] * n)
        parts: list[Any] = []
        pending = self.pieces[0]
        for value, piece in zip(self.values, self.pieces[1:], strict=True):
            encoded = value(get, n)
            if len(encoded) != n:
                raise ValueError(f"a column holds {len(encoded)} values for {n} rows")
            if isinstance(encoded, pa.DictionaryArray):
                parts.append(with_piece(pending, encoded))
            else:
                if pending:
                    parts.append(pending)
                parts.append(whole(encoded))
            pending = piece
        if pending:
            parts.append(pending)
        if len(parts) == 1:
            return parts[0]
        return pc.binary_join_element_wise(*parts, "")

    def array(self, get: Get, n: int) -> orjson.Fragment:
        if n == 0:
            return orjson.Fragment(b"[]")
        items = joined(pa.array([n], pa.int32()), self.rows(get, n))
        document = pc.binary_join_element_wise("[", items, "]", "")
        # one copy out of Arrow's memory (adding the brackets in Python would make
        # another copy of some megabytes)
        return orjson.Fragment(only_text(document))


def only_text(array: pa.Array) -> bytes:
    """The bytes of a one-item string array, copied once straight from its data buffer.
    (Through the item's scalar, `array[0].as_buffer().to_pybytes()`, the text is copied
    twice, and a 7 MB text costs 10 to 18 ms instead of 1 to 2: fresh pages each time.)"""
    _, offsets, data = array.buffers()
    bounds = memoryview(offsets).cast("q" if pa.types.is_large_string(array.type) else "i")
    start, end = bounds[array.offset], bounds[array.offset + 1]
    return bytes(memoryview(data)[start:end])


class TemplateBuilder:
    """Collects a selection's template field by field, in response order."""

    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._values: list[Value] = []
        self._pending = "{"
        self._first = [True]
        self._count_by: str | None = None

    def key(self, response_key: str) -> None:
        if not self._first[-1]:
            self._pending += ","
        self._first[-1] = False
        self._pending += json_text(response_key) + ":"

    def constant(self, value: Any) -> None:
        self._pending += json_text(value)

    def open(self) -> None:
        self._pending += "{"
        self._first.append(True)

    def close(self) -> None:
        self._pending += "}"
        self._first.pop()

    def leaf(self, path: str, encode: Encode) -> None:
        if encode in ARRAY_ITEMS:  # the brackets go into the fixed pieces
            self._pending += "["
            self._add(path, lambda get, _: encode(get(path)))
            self._pending += "]"
        else:
            self._add(path, lambda get, _: encode(get(path)))

    def nested(self, path: str, items: Template) -> None:
        """A list of objects inside each row, from the columns `path[].<item path>`."""
        if items.count_by is None:
            raise ValueError("no column to count the items by")
        prefix = f"{path}[]."
        self._pending += "["
        self._add(prefix + items.count_by, partial_list(prefix, items))
        self._pending += "]"

    def build(self) -> Template:
        return Template((*self._pieces, self._pending + "}"), tuple(self._values),
                        self._count_by)

    def _add(self, path: str, value: Value) -> None:
        self._count_by = self._count_by or path
        self._pieces.append(self._pending)
        self._pending = ""
        self._values.append(value)


def _list_array(values: Column) -> pa.Array | None:
    """An Arrow list array without null lists, else None (a Python sequence of lists)."""
    array = as_arrow(values)
    if array is None or not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)):
        return None
    return array if not array.null_count else None


def partial_list(prefix: str, items: Template) -> Value:
    """The items of the lists of objects of n rows, without brackets (see
    TemplateBuilder.nested)."""
    assert items.count_by is not None

    def value(get: Get, n: int) -> pa.Array:
        counts = get(prefix + items.count_by)  # type: ignore[operator]
        listed = _list_array(counts)
        if listed is not None:
            lengths = pc.list_value_length(listed)
            total = pc.sum(lengths).as_py() or 0
        else:
            sizes = list(map(len, as_python(counts)))
            lengths, total = pa.array(sizes, pa.int32()), sum(sizes)

        def flat(path: str) -> Column:
            column = get(prefix + path)
            array = _list_array(column)
            found: Column = (pc.list_flatten(array) if array is not None
                             else list(chain.from_iterable(as_python(column))))
            if len(found) != total:
                raise ValueError(f"column {prefix}{path}: {len(found)} items, {total} expected")
            return found

        return joined(lengths, items.rows(flat, total))
    return value
