"""JSON straight from columns: a `Columns` list encoded without a dict per item.

The lean executor (`executor.py`) can project a map's 20,000 edges into
response dicts for orjson to encode, but building those dicts (about 80,000
containers) costs more than encoding them. When the response is encoded with
orjson anyway (the HTTP view), a list held as `Columns` is encoded here
instead, into one pre-encoded `orjson.Fragment` that orjson copies as it is:

- every selected leaf column is encoded once for all rows: numbers,
  booleans and nulls by one orjson call over the whole column, split at its
  commas (none can occur inside them); strings one value at a time, each
  distinct value once; anything else through the value function the dict
  path would apply, then orjson;
- each row's object is the join of fixed pieces (keys, braces, commas,
  `__typename`: computed once from the selection) and the row's encoded
  values; nested objects are flattened into that template, and lists of
  objects inside a row (columns `top_paths[].path`) are encoded the same way
  over all rows' items, then regrouped per row.

The bytes are the ones orjson writes for the response dicts of the same
selection: same keys in the same order, same values (tests/topology/api/
graphql/test_executor.py compares both for every operation document).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from types import CodeType
from typing import Any

import orjson

Get = Callable[[str], Sequence[Any]]  # a column by attribute path
Value = Callable[[Get, int], list[str]]  # the JSON texts of n rows' values
Encode = Callable[[Sequence[Any]], list[str]]  # a column's values as JSON texts
_CODE: dict[str, CodeType] = {}  # generated row functions, by source
_CODE_LIMIT = 256
_TEXT_TYPES = frozenset({str, type(None)})


def _text(value: Any) -> str:
    return orjson.dumps(value).decode()


def numbers(values: Sequence[Any]) -> list[str]:
    """Ints, floats, booleans and nulls: one orjson call for the whole column."""
    if not values:
        return []
    parts = orjson.dumps(values if type(values) is list else list(values)).decode()[1:-1]
    found = parts.split(",")
    if len(found) != len(values):  # not numbers after all: a comma inside some value
        return each(values)
    return found


def each(values: Sequence[Any]) -> list[str]:
    return list(map(_text, values))


def strings(values: Sequence[Any]) -> list[str]:
    """Strings (or nulls), each distinct one encoded once: ids repeat a lot. (Anything
    else one by one: equal values of different types, 1 and True, encode differently.)"""
    if not set(map(type, values)) <= _TEXT_TYPES:
        return each(values)
    encoded = dict.fromkeys(values)
    for value in encoded:
        encoded[value] = _text(value)
    return list(map(encoded.__getitem__, values))


def lists(values: Sequence[Any]) -> list[str]:
    """Non-null lists of plain scalars (`list(...)` first, as the dict path does), each
    distinct one encoded once: most edges speak the same protocol."""
    rows = list(map(tuple, values))
    try:
        encoded = dict.fromkeys(rows)
    except TypeError:  # an unhashable item
        return list(map(_text, map(list, values)))
    for row in encoded:
        encoded[row] = _text(list(row))
    return list(map(encoded.__getitem__, rows))


def by_identity(convert: Callable[[Any], Any]) -> Encode:
    """Values converted by `convert` (enum members: singletons), each distinct object once."""
    def encode(values: Sequence[Any]) -> list[str]:
        keys = list(map(id, values))
        encoded: dict[int, Any] = dict(zip(keys, values, strict=True))
        for key, value in encoded.items():
            encoded[key] = _text(convert(value))
        return list(map(encoded.__getitem__, keys))
    return encode


def converted(convert: Callable[[Any], Any]) -> Encode:
    """Values converted by `convert` (custom scalars, nullable lists, ...): each distinct
    value once when they are hashable and of one type besides null (equal values of
    different types, 1 and True, may convert differently), else one by one."""
    def encode(values: Sequence[Any]) -> list[str]:
        if len(set(map(type, values)) - {type(None)}) > 1:
            return list(map(_text, map(convert, values)))
        try:
            encoded = dict.fromkeys(values)
        except TypeError:
            return list(map(_text, map(convert, values)))
        for value in encoded:
            encoded[value] = _text(convert(value))
        return list(map(encoded.__getitem__, values))
    return encode


@dataclass(frozen=True)
class Template:
    """One JSON object per row: fixed pieces around the rows' encoded values
    (`pieces` has one more item than `values`)."""

    pieces: tuple[str, ...]
    values: tuple[Value, ...]
    count_by: str | None  # a column path with one value per row: what items are counted by

    def rows(self, get: Get, n: int, around: tuple[str, str] = ("", "")) -> list[str]:
        """Each row's object, between `around`'s two pieces."""
        if not self.values:
            return [around[0] + self.pieces[0] + around[1]] * n
        columns = []
        for value in self.values:
            encoded = value(get, n)
            if len(encoded) != n:
                raise ValueError(f"a column holds {len(encoded)} values for {n} rows")
            columns.append(encoded)
        return _row_function(self.pieces, around)(columns)

    def array(self, get: Get, n: int) -> orjson.Fragment:
        return orjson.Fragment(("[" + ",".join(self.rows(get, n)) + "]").encode())


def _row_function(pieces: tuple[str, ...], around: tuple[str, str]) -> Callable[
        [list[list[str]]], list[str]]:
    """A comprehension joining each row's values between the pieces in one f-string
    (one string building step per row: about a third cheaper than %-formatting)."""
    names = [f"v{i}" for i in range(len(pieces) - 1)]
    first, *rest = pieces
    literal = _literal(around[0] + first) + "".join(
        f"{{{name}}}{_literal(piece)}" for name, piece in zip(names, rest, strict=True))
    literal += _literal(around[1])
    source = (f"def rows(columns):\n    return [f'{literal}' for ({', '.join(names)},) "
              f"in zip(*columns, strict=True)]\n")
    code = _CODE.get(source)
    if code is None:
        if len(_CODE) >= _CODE_LIMIT:
            _CODE.clear()
        code = _CODE[source] = compile(source, "<json rows>", "exec")
    scope: dict[str, Any] = {}
    exec(code, scope)
    return scope["rows"]


def _literal(text: str) -> str:
    """Text as the literal part of a single-quoted f-string."""
    return (text.replace("\\", "\\\\").replace("'", "\\'").replace("{", "{{")
            .replace("}", "}}").replace("\n", "\\n").replace("\r", "\\r"))


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
        self._add(path, lambda get, _: encode(get(path)))

    def nested(self, path: str, items: Template) -> None:
        """A list of objects inside each row, from the columns `path[].<item path>`."""
        if items.count_by is None:
            raise ValueError("no column to count the items by")
        prefix = f"{path}[]."
        self._add(prefix + items.count_by, partial_list(prefix, items))

    def build(self) -> Template:
        return Template((*self._pieces, self._pending + "}"), tuple(self._values),
                        self._count_by)

    def _add(self, path: str, value: Value) -> None:
        self._count_by = self._count_by or path
        self._pieces.append(self._pending)
        self._pending = ""
        self._values.append(value)


def partial_list(prefix: str, items: Template) -> Value:
    """The encoded lists of objects of n rows (see TemplateBuilder.nested)."""
    assert items.count_by is not None

    def value(get: Get, n: int) -> list[str]:
        lengths = list(map(len, get(prefix + items.count_by)))  # type: ignore[operator]
        total = sum(lengths)

        def flat(path: str) -> list[Any]:
            found = list(chain.from_iterable(get(prefix + path)))
            if len(found) != total:
                raise ValueError(f"column {prefix}{path}: {len(found)} items, {total} expected")
            return found

        if total == n and (n == 0 or max(lengths) == 1):  # one item per row: the common case
            return items.rows(flat, total, ("[", "]"))
        rest = iter(items.rows(flat, total))
        return ["[" + ",".join(islice(rest, length)) + "]" for length in lengths]
    return value
