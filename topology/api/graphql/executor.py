"""A lean path for plain-data object types: project the selection without resolvers.

graphql-core completes every field of every object through the resolver
machinery (resolve info, path, awaitable checks, leaf coercion): about 25 us
per field, so a map of 20,000 edges pays it half a million times. The output
types of this API are plain dataclasses without resolvers or arguments, so
their selection can be compiled once per list into a projection plan (field
merging, aliases, fragments, @skip/@include are already resolved by
`collect_subfields`) and applied to each item with plain attribute reads. The
schema stays fully typed: validation, introspection and the exported SDL are
untouched; only the execution of such types takes the lean path. Types with a
resolver or an argument anywhere in their selection take the standard path.

A list may also come as `rows.Columns` (the map's edges: one list per
attribute path, no object per item): the plan then zips the columns the
selection needs into the response dicts in one comprehension, and falls back
to iterating the list's row objects where a value could not be held in
columns (a nullable nested object). When the context asks for it
(`JSON_FRAGMENTS`: the response will be encoded by orjson), such a list is
instead encoded straight from its columns into one pre-encoded JSON fragment
(`json_columns.py`): the same bytes, without a dict per item.

Generated sources are compiled once per process (the same selection gives
the same source), not once per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from enum import Enum
from functools import partial
from types import CodeType
from typing import Any

from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    is_leaf_type,
)
from topology.api.graphql.lean_json import (
    JSON,
    JSON_FRAGMENTS,
    OBJECT,
    OBJECTS,
    PLAIN_SCALARS,
    TYPENAME,
    JsonColumns,
    NotLean,
)
from topology.api.graphql.rows import Columns
from topology.api.graphql.threads import in_thread

__all__ = ["JSON_FRAGMENTS", "LeanExecutionContext", "is_lean"]
_CODE: dict[str, CodeType] = {}  # generated source -> its code
_CODE_LIMIT = 512
Project = Callable[[Any], Any]
_LEAN_TYPES: dict[GraphQLObjectType, bool] = {}
_DEFS = "__defs"  # while planning: sources of the generated column functions


def is_lean(object_type: GraphQLObjectType) -> bool:
    """Every field a plain attribute: no resolver, no arguments."""
    known = _LEAN_TYPES.get(object_type)
    if known is None:
        known = True
        for field in object_type.fields.values():
            definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if definition is None or definition.base_resolver is not None or field.args:
                known = False
                break
        _LEAN_TYPES[object_type] = known
    return known


class LeanExecutionContext(JsonColumns, StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        context = self.context_value
        self._json = isinstance(context, dict) and bool(context.get(JSON_FRAGMENTS))
        self._plans: dict[tuple[GraphQLObjectType, int], tuple[Any, Project | None, bool]] = {}

    def complete_object_value(  # type: ignore[override]
        self, return_type: GraphQLObjectType, field_details_list: Any, info: Any, path: Any,
        result: Any, position_context: Any,
    ) -> Any:
        key = (return_type, id(field_details_list))
        cached = self._plans.get(key)
        if cached is None:
            try:
                project: Project | None
                project, encodes = self._object_plan(return_type, field_details_list)
            except NotLean:
                project, encodes = None, False
            # keep the list alive with its plan so its id cannot be reused meanwhile
            cached = self._plans[key] = (field_details_list, project, encodes)
        project = cached[1]
        if project is None:
            return super().complete_object_value(
                return_type, field_details_list, info, path, result, position_context)
        if cached[2]:
            # JSON encoding of column-held lists (a map: tens of milliseconds, much of it
            # in Arrow without the GIL) in a worker thread: the event loop stays free
            return in_thread(partial(project, result))
        return project(result)

    def _object_plan(self, object_type: GraphQLObjectType,
                     field_details_list: Any) -> tuple[Project, bool]:
        """A function building the response dict of one value, generated as Python source:
        one expression for the whole selection below this type, nested objects inlined
        (no call per object or per plain field); and whether it encodes column-held
        lists as JSON (`_json_columnar`)."""
        names: dict[str, Any] = {_DEFS: [], "_Columns": Columns}
        body = self._object_source(object_type, field_details_list, "o", names, required=True)
        source = "".join(names.pop(_DEFS)) + f"def project(o):\n    return {body}\n"
        encodes = any(name.startswith(JSON) for name in names)
        exec(_compiled(source, f"<lean {object_type.name}>"), names)
        return names["project"], encodes

    def _value_function(self, output_type: GraphQLOutputType, details: Any) -> Project:
        """The dict path's function from a value of this type to its response value."""
        names: dict[str, Any] = {_DEFS: [], "_Columns": Columns}
        body = self._expression("x", output_type, details, names)
        source = "".join(names.pop(_DEFS)) + f"def value(x):\n    return {body}\n"
        exec(_compiled(source, "<lean value>"), names)
        return names["value"]

    def _object_source(self, object_type: GraphQLObjectType, field_details_list: Any,
                       value: str, names: dict[str, Any], *, required: bool) -> str:
        """The expression turning `value` (an object of this type) into its response dict.

        `value` is evaluated once: unless it is a plain name it is bound to a fresh
        name (an assignment expression) where it is first needed."""
        selected = list(self._lean_fields(object_type, field_details_list))
        bound = value if value.isidentifier() else self._name("_o", names)
        first = value if bound == value or not required else f"({bound} := {value})"
        items: list[str] = []
        for response_key, details, field in selected:
            if field is None:
                items.append(f"{response_key!r}: {object_type.name!r}")
                continue
            attribute = field.extensions[GraphQLCoreConverter.DEFINITION_BACKREF].python_name
            if not attribute.isidentifier():
                raise NotLean
            items.append(f"{response_key!r}: "
                         + self._expression(f"{first}.{attribute}", field.type, details, names))
            first = bound
        display = "{" + ", ".join(items) + "}"
        if required:
            return display
        if bound == value:
            return f"(None if {value} is None else {display})"
        return f"(None if ({bound} := {value}) is None else {display})"

    def _columnar(self, item_type: GraphQLOutputType, details: Any,
                  names: dict[str, Any]) -> str | None:
        """The name of a generated function projecting a `Columns` list of this item type
        (None when the items are not objects or a nested object may be null)."""
        object_type = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if not isinstance(object_type, GraphQLObjectType):
            return None
        if self._json:
            return self._json_columnar(object_type, details, names)
        columns: dict[str, str] = {}
        try:
            body = self._columns_source(object_type, details, "", names, columns)
        except NotLean:
            return None
        function = self._name("_columns", names)
        if columns:
            targets = "".join(f"{var}, " for var in columns.values())
            loop = f"for ({targets}) in zip({', '.join(f'c({p!r})' for p in columns)})"
        else:
            loop = "for _ in range(len(v))"
        names[_DEFS].append(f"def {function}(v):\n    c = v.column\n"
                            f"    return [{body} {loop}]\n")
        return function

    def _columns_source(self, object_type: GraphQLObjectType, field_details_list: Any,
                        prefix: str, names: dict[str, Any], columns: dict[str, str]) -> str:
        """`_object_source` reading each field from a column: `columns` maps attribute
        paths to the loop variables holding them; nested objects flatten into paths."""
        items: list[str] = []
        for response_key, details, kind, path, of in self._column_fields(
                object_type, field_details_list, prefix):
            if kind == TYPENAME:
                source = repr(of)
            elif kind == OBJECT:
                source = self._columns_source(of, details, path + ".", names, columns)
            elif kind == OBJECTS:
                source = self._nested_source(of, details, path, names, columns)
            else:
                variable = columns.get(path)
                if variable is None:
                    variable = columns[path] = self._name("_k", names)
                source = self._expression(variable, of, details, names)
            items.append(f"{response_key!r}: {source}")
        return "{" + ", ".join(items) + "}"

    def _nested_source(self, item_type: GraphQLObjectType, details: Any, path: str,
                       names: dict[str, Any], columns: dict[str, str]) -> str:
        """A list of objects inside a `Columns`: given per row as parallel lists, one
        per field of the items (column `path[].field`), zipped into the items."""
        inside: dict[str, str] = {}
        body = self._columns_source(item_type, details, "", names, inside)
        if not inside:
            raise NotLean  # nothing to count the items by
        lists = []
        for field_path in inside:
            variable = columns.get(f"{path}[].{field_path}")
            if variable is None:
                variable = columns[f"{path}[].{field_path}"] = self._name("_k", names)
            lists.append(variable)
        targets = "".join(f"{var}, " for var in inside.values())
        # most lists hold one item (one path per edge): built inline, without the call
        # of a comprehension; the same body, reading each field's first value
        first = {field_path: f"{variable}[0]" for field_path, variable in zip(
            inside, lists, strict=True)}
        single = self._columns_source(item_type, details, "", names, first)
        return (f"([{single}] if len({lists[0]}) == 1 else "
                f"[{body} for ({targets}) in zip({', '.join(lists)})])")

    def _lean_fields(
        self, object_type: GraphQLObjectType, field_details_list: Any
    ) -> Iterator[tuple[str, Any, GraphQLField | None]]:
        """The selected fields of a lean type: (response key, details, field), the field
        None for `__typename`; raises NotLean for a type that must resolve itself."""
        if not is_lean(object_type) or object_type.is_type_of is not None:
            raise NotLean
        grouped = self.collect_subfields(object_type, field_details_list).grouped_field_set
        for response_key, details in grouped.items():
            name = details[0].node.name.value
            yield response_key, details, (
                None if name == "__typename" else object_type.fields[name])

    @staticmethod
    def _name(prefix: str, names: dict[str, Any]) -> str:
        name = f"{prefix}{len(names)}"
        names[name] = None  # reserve it
        return name

    def _expression(self, value: str, output_type: GraphQLOutputType, details: Any,
                    names: dict[str, Any]) -> str:
        """Python expression turning `value` (of this type) into its response value."""
        required = isinstance(output_type, GraphQLNonNull)
        inner = output_type.of_type if required else output_type
        if isinstance(inner, GraphQLObjectType):
            return self._object_source(inner, details, value, names, required=required)
        if (isinstance(inner, GraphQLScalarType) and inner.name in PLAIN_SCALARS):
            return value  # built by our own typed dataclasses: already the response value
        table = _enum_table(self, inner) if isinstance(inner, GraphQLEnumType) else None
        # a value used twice (null check, enum lookup) is evaluated once, then named
        bound = value
        if not value.isidentifier() and (not required or table):
            bound = self._name("_v", names)
            value = f"({bound} := {value})"
        columnar = (self._columnar(inner.of_type, details, names)
                    if isinstance(inner, GraphQLList) else None)
        if columnar and not value.isidentifier():
            bound = self._name("_v", names)
            value = f"({bound} := {value})"
        if isinstance(inner, GraphQLList):
            item = self._name("_i", names)
            each = self._expression(item, inner.of_type, details, names)
            def listed(v: str) -> str:
                return f"[{each} for {item} in {v}]" if each != item else f"list({v})"

            def expression(v: str) -> str:
                if columnar is None:
                    return listed(v)
                # `v` first: it may bind `bound`
                return (f"({columnar}({bound}) if {v}.__class__ is _Columns "
                        f"else {listed(bound)})")
        elif table:
            known, convert = self._name("_t", names), self._name("_f", names)
            names[known], names[convert] = table, _leaf(self, inner)
            def expression(v: str) -> str:
                return f"({known}.get(id({v})) or {convert}({bound}))"
        elif is_leaf_type(inner):
            function = self._name("_f", names)
            names[function] = _leaf(self, inner)
            def expression(v: str) -> str:
                return f"{function}({v})"
        else:
            raise NotLean
        if required:
            return expression(value)
        return f"(None if {value} is None else {expression(bound)})"


def _compiled(source: str, filename: str) -> CodeType:
    code = _CODE.get(source)
    if code is None:
        if len(_CODE) >= _CODE_LIMIT:
            _CODE.clear()
        code = _CODE[source] = compile(source, filename, "exec")
    return code


def _enum_table(context: LeanExecutionContext, enum: GraphQLEnumType) -> dict[int, Any]:
    """Response value per Python enum member, keyed by identity: members are singletons,
    and Enum hashes in Python code. Empty when the type has no Python enum behind it."""
    definition = enum.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    wrapped = getattr(definition, "wrapped_cls", None)
    if not (isinstance(wrapped, type) and issubclass(wrapped, Enum)):
        return {}
    return {id(member): context.complete_leaf_value(enum, member) for member in wrapped}


def _leaf(context: LeanExecutionContext, leaf: Any) -> Project:
    """Coerce enums and custom scalars (DateTime), memoised: the values repeat a lot."""
    known: dict[Any, Any] = {}

    def convert(value: Any) -> Any:
        try:
            return known[value]
        except KeyError:
            coerced = known[value] = context.complete_leaf_value(leaf, value)
            return coerced
        except TypeError:  # unhashable
            return context.complete_leaf_value(leaf, value)
    return convert
