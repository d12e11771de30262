"""Arrow arrays of JSON texts, one per value of a column: the leaf encoders of
`json_columns.py`, which joins them into rows.

A column may be a Python sequence, an Arrow array (chunked or not) or
`rows.Coded`; every encoder gives a string array of the texts orjson writes
for the values, nulls included, or, when it encoded each distinct value once,
a dictionary array of those texts (a null index writes null): the row
template then adds the fixed piece before the value to the few distinct texts
instead of to every row (`json_columns.Template.rows`; `plain` decodes one):

- integers and booleans held by Arrow: Arrow's cast to text (orjson's digits);
  other numbers: one orjson call over the whole column, split at its commas by
  Arrow (none can occur inside a number);
- strings: each distinct value once, quoted by Arrow when none holds a
  character orjson escapes (control characters, quote, backslash; nothing
  else), else through orjson; anything else in a text column one by one
  (equal values of different types, 1 and True, encode differently);
- enum members and other converted values (DateTime): each distinct value
  once, through the value function the dict path would apply, then orjson;
- lists of plain scalars: the items as one column, joined per row, without
  the brackets (the row template writes them: `ARRAY_ITEMS`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from topology.api.graphql.rows import HELD, Coded

Column = Sequence[Any] | pa.Array | pa.ChunkedArray | Coded
Encode = Callable[[Column], pa.Array]  # a column's values as JSON texts (a string array)
_TEXT_TYPES = frozenset({str, type(None)})
_ZERO = pa.array([0], pa.int32())
_ESCAPED = r'[\x00-\x1f"\\]'  # what orjson escapes in a string
_FEW = 64  # rows from which a float column is looked at for repeated values
_SAMPLE = 256  # its first rows, which must repeat


def json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def text_array(found: list[str]) -> pa.Array:
    return pa.array(found, pa.string())


def as_arrow(values: Column) -> pa.Array | None:
    """The values as one Arrow array, or None when they are a Python sequence."""
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    return values if isinstance(values, pa.Array) else None


def whole(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def as_python(values: Column) -> Sequence[Any]:
    return values.to_pylist() if isinstance(values, HELD) else values  # type: ignore[union-attr]


def plain(texts: pa.Array) -> pa.Array:
    """An encoder's texts as a plain string array (decoding a dictionary array)."""
    if isinstance(texts, pa.DictionaryArray):
        return _nulls(pc.take(texts.dictionary, texts.indices))
    return texts


def with_piece(piece: str, texts: pa.Array) -> pa.Array:
    """piece + text for every row of a dictionary array of texts (null: piece + null),
    the piece added to each distinct text once."""
    dictionary, indices = texts.dictionary, whole(texts.indices)
    if indices.null_count:
        dictionary = pa.concat_arrays([dictionary, pa.array(["null"], dictionary.type)])
        indices = pc.fill_null(indices, len(dictionary) - 1)
    if piece:
        dictionary = pc.binary_join_element_wise(piece, dictionary, "")
    return pc.take(dictionary, indices)


def _members(values: Coded, encode: Callable[[Any], str]) -> pa.Array:
    """A coded column's texts: each member's once, taken by code."""
    return _taken([encode(member) for member in values.members], values.codes)


def _nulls(found: pa.Array) -> pa.Array:
    """Nulls written as null."""
    return pc.fill_null(found, "null") if found.null_count else found


def _taken(found: list[str], indices: pa.Array) -> pa.Array:
    """found[i] for each index i; "null" where the index is null (a dictionary array)."""
    return pa.DictionaryArray.from_arrays(whole(indices), text_array(found))


def numbers(values: Column) -> pa.Array:
    """Ints, floats, booleans and nulls: Arrow integers and booleans cast to text, anything
    else by one orjson call for the whole column (floats: orjson's shortest digits)."""
    array = as_arrow(values)
    if array is not None and (pa.types.is_integer(array.type)
                              or pa.types.is_boolean(array.type)):
        return _nulls(pc.cast(array, pa.string()))
    if array is not None and pa.types.is_floating(array.type) and _repeating(array):
        coded = pc.dictionary_encode(array)  # -0.0 and 0.0 stay apart, as orjson writes them
        if 2 * len(coded.dictionary) <= len(array):
            return pa.DictionaryArray.from_arrays(coded.indices, numbers(coded.dictionary))
    values = as_python(values)
    if not values:
        return text_array([])
    encoded = orjson.dumps(values if type(values) is list else list(values)).decode()
    found = pc.list_flatten(pc.split_pattern(text_array([encoded[1:-1]]), ","))
    if len(found) != len(values):  # not numbers after all: a comma inside some value
        return each(values)
    return found


def _repeating(array: pa.Array) -> bool:
    """Whether a float column is worth encoding per distinct value: enough rows, and
    its first rows repeat (a column of distinct values is not hashed whole for
    nothing)."""
    if len(array) < _FEW:
        return False
    sample = array.slice(0, _SAMPLE)
    return 2 * pc.count_distinct(sample, mode="all").as_py() <= len(sample)


def each(values: Column) -> pa.Array:
    return text_array(list(map(json_text, as_python(values))))


def strings(values: Column) -> pa.Array:
    """Strings (or nulls), each distinct one encoded once: ids repeat a lot. (Anything
    else one by one: equal values of different types, 1 and True, encode differently.)"""
    array = as_arrow(values)
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
    return pa.DictionaryArray.from_arrays(coded.indices, _quoted(coded.dictionary))


def _quoted(values: pa.Array) -> pa.Array:
    """JSON texts of non-null strings: quoted as they are when none holds a character
    orjson escapes (control characters, quote, backslash; nothing else), else each
    through orjson."""
    if len(values) and pc.any(pc.match_substring_regex(values, _ESCAPED)).as_py():
        return text_array(list(map(json_text, values.to_pylist())))
    return pc.binary_join_element_wise('"', values, '"', "")


def lists(values: Column) -> pa.Array:
    """Non-null lists of plain scalars (`list(...)` first, as the dict path does), each
    row's items without the brackets (the template has them, see `leaf`): from an Arrow
    list array, the items encoded as one column and joined per row; else each distinct
    list encoded once: most edges speak the same protocol."""
    array = as_arrow(values)
    if array is not None and (pa.types.is_list(array.type)
                              or pa.types.is_large_list(array.type)) and not array.null_count:
        items = pc.list_flatten(array)
        kind = array.type.value_type
        encode = (strings if pa.types.is_string(kind) or pa.types.is_large_string(kind)
                  else numbers if pa.types.is_integer(kind) or pa.types.is_boolean(kind)
                  or pa.types.is_floating(kind) else None)
        if encode is not None:
            return joined(pc.list_value_length(array), encode(items))
    rows = list(map(tuple, as_python(values)))
    try:
        encoded = dict(zip(rows, rows, strict=True))
    except TypeError:  # an unhashable item
        return text_array([json_text(list(row))[1:-1] for row in rows])
    return _by_position(encoded, rows, lambda row: json_text(list(row))[1:-1])


def _by_position(distinct: dict[Any, Any], keys: Sequence[Any],
                 encode: Callable[[Any], str]) -> pa.Array:
    """Each key's text, computed once per distinct key (`distinct`: key -> its value)."""
    position = {key: i for i, key in enumerate(distinct)}
    return pa.DictionaryArray.from_arrays(
        pa.array(list(map(position.__getitem__, keys)), pa.int32()),
        text_array([encode(value) for value in distinct.values()]))


def by_identity(convert: Callable[[Any], Any]) -> Encode:
    """Values converted by `convert` (enum members: singletons), each distinct object once."""
    def encode(values: Column) -> pa.Array:
        if isinstance(values, Coded):
            return _members(values, lambda member: json_text(convert(member)))
        values = as_python(values)
        keys = list(map(id, values))
        distinct = dict(zip(keys, values, strict=True))
        for key, value in distinct.items():
            distinct[key] = convert(value)
        return _by_position(distinct, keys, json_text)
    return encode


def converted(convert: Callable[[Any], Any]) -> Encode:
    """Values converted by `convert` (custom scalars, nullable lists, ...): each distinct
    value once when they are hashable and of one type besides null (equal values of
    different types, 1 and True, may convert differently), else one by one."""
    def encode(values: Column) -> pa.Array:
        if isinstance(values, Coded):
            return _members(values, lambda member: json_text(convert(member)))
        values = as_python(values)
        if len(set(map(type, values)) - {type(None)}) > 1:
            return text_array(list(map(json_text, map(convert, values))))
        try:
            distinct = dict(zip(values, values, strict=True))
        except TypeError:
            return text_array(list(map(json_text, map(convert, values))))
        return _by_position(distinct, values, lambda value: json_text(convert(value)))
    return encode


def joined(lengths: pa.Array, texts: pa.Array) -> pa.Array:
    """Per row, its `lengths[i]` next texts joined by commas: a JSON array's items."""
    offsets = pa.concat_arrays([_ZERO, whole(pc.cumulative_sum(lengths)).cast(pa.int32())])
    return pc.binary_join(pa.ListArray.from_arrays(offsets, plain(whole(texts))), ",")


ARRAY_ITEMS = frozenset({lists})  # encoders writing a JSON array's items, not its brackets
