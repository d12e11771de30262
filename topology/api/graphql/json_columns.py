"""JSON straight from columns: a `Columns` list encoded without a dict per item.

The lean executor (`executor.py`) can project a map's 20,000 edges into
response dicts for orjson to encode, but building those dicts (about 80,000
containers) costs more than encoding them. When the response is encoded with
orjson anyway (the HTTP view), a list held as `Columns` is encoded here
instead, into one pre-encoded `orjson.Fragment` that orjson copies as it is.
The work per row runs in Arrow's compute functions (C++, without the GIL),
the Python work is per column or per distinct value:

- every selected leaf column becomes one Arrow array of JSON texts, one per
  row: integers and booleans by Arrow's cast to text (the digits orjson
  writes); floats by one orjson call over the whole column, split at its
  commas by Arrow (none can occur inside a number); strings, enums and other
  converted values (DateTime) each distinct value once, then taken per row:
  strings quoted by Arrow when none needs escaping, else through orjson,
  other values through the value function the dict path would apply and
  orjson; lists
  of plain scalars from their items the same way, joined per row;
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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from topology.api.graphql.rows import HELD, Coded

Column = Sequence[Any] | pa.Array | pa.ChunkedArray | Coded
Get = Callable[[str], Column]  # a column by attribute path
Value = Callable[[Get, int], pa.Array]  # the JSON texts of n rows' values
Encode = Callable[[Column], pa.Array]  # a column's values as JSON texts (a string array)
_TEXT_TYPES = frozenset({str, type(None)})
_ZERO = pa.array([0], pa.int32())
_ESCAPED = r'[\x00-\x1f"\\]'  # what orjson escapes in a string


def _text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _texts(texts: list[str]) -> pa.Array:
    return pa.array(texts, pa.string())


def _arrow(values: Column) -> pa.Array | None:
    """The values as one Arrow array, or None when they are a Python sequence."""
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    return values if isinstance(values, pa.Array) else None


def _one(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _python(values: Column) -> Sequence[Any]:
    return values.to_pylist() if isinstance(values, HELD) else values  # type: ignore[union-attr]


def _members(values: Coded, text: Callable[[Any], str]) -> pa.Array:
    """A coded column's texts: each member's once, taken by code."""
    return _taken([text(member) for member in values.members], values.codes)


def _nulls(texts: pa.Array) -> pa.Array:
    """Nulls written as null."""
    return pc.fill_null(texts, "null") if texts.null_count else texts


def _taken(texts: list[str], indices: pa.Array) -> pa.Array:
    """texts[i] for each index i; "null" where the index is null."""
    return _nulls(pc.take(_texts(texts), _one(indices)))


def numbers(values: Column) -> pa.Array:
    """Ints, floats, booleans and nulls: Arrow integers and booleans cast to text, anything
    else by one orjson call for the whole column (floats: orjson's shortest digits)."""
    array = _arrow(values)
    if array is not None and (pa.types.is_integer(array.type)
                              or pa.types.is_boolean(array.type)):
        return _nulls(pc.cast(array, pa.string()))
    values = _python(values)
    if not values:
        return _texts([])
    text = orjson.dumps(values if type(values) is list else list(values)).decode()
    found = pc.list_flatten(pc.split_pattern(_texts([text[1:-1]]), ","))
    if len(found) != len(values):  # not numbers after all: a comma inside some value
        return each(values)
    return found


def each(values: Column) -> pa.Array:
    return _texts(list(map(_text, _python(values))))


def strings(values: Column) -> pa.Array:
    """Strings (or nulls), each distinct one encoded once: ids repeat a lot. (Anything
    else one by one: equal values of different types, 1 and True, encode differently.)"""
    array = _arrow(values)
    if array is None:
        if not set(map(type, values)) <= _TEXT_TYPES:
            return each(values)
        try:
            array = pa.array(values, pa.string())
        except (pa.ArrowException, UnicodeError):  # not UTF-8: orjson says why
            return each(values)
    elif not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return each(array)
    coded = pc.dictionary_encode(array)
    return _nulls(pc.take(_quoted(coded.dictionary), coded.indices))


def _quoted(values: pa.Array) -> pa.Array:
    """JSON texts of non-null strings: quoted as they are when none holds a character
    orjson escapes (control characters, quote, backslash; nothing else), else each
    through orjson."""
    if len(values) and pc.any(pc.match_substring_regex(values, _ESCAPED)).as_py():
        return _texts(list(map(_text, values.to_pylist())))
    return pc.binary_join_element_wise('"', values, '"', "")


def lists(values: Column) -> pa.Array:
    """Non-null lists of plain scalars (`list(...)` first, as the dict path does), each
    row's items without the brackets (the template has them, see `leaf`): from an Arrow
    list array, the items encoded as one column and joined per row; else each distinct
    list encoded once: most edges speak the same protocol."""
    array = _arrow(values)
    if array is not None and (pa.types.is_list(array.type)
                              or pa.types.is_large_list(array.type)) and not array.null_count:
        items = pc.list_flatten(array)
        kind = array.type.value_type
        encode = (strings if pa.types.is_string(kind) or pa.types.is_large_string(kind)
                  else numbers if pa.types.is_integer(kind) or pa.types.is_boolean(kind)
                  or pa.types.is_floating(kind) else None)
        if encode is not None:
            return _joined(pc.list_value_length(array), encode(items))
    rows = list(map(tuple, _python(values)))
    try:
        encoded = dict(zip(rows, rows, strict=True))
    except TypeError:  # an unhashable item
        return _texts([_text(list(row))[1:-1] for row in rows])
    return _by_position(encoded, rows, lambda row: _text(list(row))[1:-1])


def _by_position(distinct: dict[Any, Any], keys: Sequence[Any],
                 text: Callable[[Any], str]) -> pa.Array:
    """Each key's text, computed once per distinct key (`distinct`: key -> its value)."""
    position = {key: i for i, key in enumerate(distinct)}
    return pc.take(_texts([text(value) for value in distinct.values()]),
                   pa.array(list(map(position.__getitem__, keys)), pa.int32()))


def by_identity(convert: Callable[[Any], Any]) -> Encode:
    """Values converted by `convert` (enum members: singletons), each distinct object once."""
    def encode(values: Column) -> pa.Array:
        if isinstance(values, Coded):
            return _members(values, lambda member: _text(convert(member)))
        values = _python(values)
        keys = list(map(id, values))
        distinct = dict(zip(keys, values, strict=True))
        for key, value in distinct.items():
            distinct[key] = convert(value)
        return _by_position(distinct, keys, _text)
    return encode


def converted(convert: Callable[[Any], Any]) -> Encode:
    """Values converted by `convert` (custom scalars, nullable lists, ...): each distinct
    value once when they are hashable and of one type besides null (equal values of
    different types, 1 and True, may convert differently), else one by one."""
    def encode(values: Column) -> pa.Array:
        if isinstance(values, Coded):
            return _members(values, lambda member: _text(convert(member)))
        values = _python(values)
        if len(set(map(type, values)) - {type(None)}) > 1:
            return _texts(list(map(_text, map(convert, values))))
        try:
            distinct = dict(zip(values, values, strict=True))
        except TypeError:
            return _texts(list(map(_text, map(convert, values))))
        return _by_position(distinct, values, lambda value: _text(convert(value)))
    return encode


def _joined(lengths: pa.Array, texts: pa.Array) -> pa.Array:
    """Per row, its `lengths[i]` next texts joined by commas: a JSON array's items."""
    offsets = pa.concat_arrays([_ZERO, _one(pc.cumulative_sum(lengths)).cast(pa.int32())])
    return pc.binary_join(pa.ListArray.from_arrays(offsets, _one(texts)), ",")


@dataclass(frozen=True)
class Template:
    """One JSON object per row: fixed pieces around the rows' encoded values
    (`pieces` has one more item than `values`)."""

    pieces: tuple[str, ...]
    values: tuple[Value, ...]
    count_by: str | None  # a column path with one value per row: what items are counted by

    def rows(self, get: Get, n: int) -> pa.Array:
        """Each row's object, as an Arrow array of texts."""
        if not self.values:
            return _texts([self.pieces[0]] * n)
        joined: list[Any] = [self.pieces[0]]
        for value, piece in zip(self.values, self.pieces[1:], strict=True):
            encoded = value(get, n)
            if len(encoded) != n:
                raise ValueError(f"a column holds {len(encoded)} values for {n} rows")
            joined.append(_one(encoded))
            if piece:
                joined.append(piece)
        return pc.binary_join_element_wise(*joined, "")

    def array(self, get: Get, n: int) -> orjson.Fragment:
        if n == 0:
            return orjson.Fragment(b"[]")
        items = _joined(pa.array([n], pa.int32()), self.rows(get, n))
        whole = pc.binary_join_element_wise("[", items, "]", "")
        # one copy out of Arrow's memory (adding the brackets in Python would make
        # another copy of some megabytes)
        return orjson.Fragment(whole[0].as_buffer().to_pybytes())


ARRAY_ITEMS = frozenset({lists})  # encoders writing a JSON array's items, not its brackets


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
        self._pending += _text(response_key) + ":"

    def constant(self, value: Any) -> None:
        self._pending += _text(value)

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
    array = _arrow(values)
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
            sizes = list(map(len, _python(counts)))
            lengths, total = pa.array(sizes, pa.int32()), sum(sizes)

        def flat(path: str) -> Column:
            column = get(prefix + path)
            array = _list_array(column)
            found: Column = (pc.list_flatten(array) if array is not None
                             else list(chain.from_iterable(_python(column))))
            if len(found) != total:
                raise ValueError(f"column {prefix}{path}: {len(found)} items, {total} expected")
            return found

        return _joined(lengths, items.rows(flat, total))
    return value
