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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter

from graphql import (
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    is_leaf_type,
)

_PLAIN_SCALARS = frozenset({"String", "Int", "Float", "Boolean", "ID"})
Project = Callable[[Any], Any]
_LEAN_TYPES: dict[GraphQLObjectType, bool] = {}


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


class _NotLean(Exception):
    """Some type in the selection needs the standard path."""


class LeanExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plans: dict[tuple[GraphQLObjectType, int], tuple[Any, Project | None]] = {}

    def complete_object_value(  # type: ignore[override]
        self, return_type: GraphQLObjectType, field_details_list: Any, info: Any, path: Any,
        result: Any, position_context: Any,
    ) -> Any:
        key = (return_type, id(field_details_list))
        cached = self._plans.get(key)
        if cached is None:
            try:
                project: Project | None = self._object_plan(return_type, field_details_list)
            except _NotLean:
                project = None
            # keep the list alive with its plan so its id cannot be reused meanwhile
            cached = self._plans[key] = (field_details_list, project)
        project = cached[1]
        if project is None:
            return super().complete_object_value(
                return_type, field_details_list, info, path, result, position_context)
        return project(result)

    def _object_plan(self, object_type: GraphQLObjectType, field_details_list: Any) -> Project:
        """A function building the response dict of one value, generated as Python source:
        one dict display per type and selection, no loop and no call per plain field."""
        if not is_lean(object_type) or object_type.is_type_of is not None:
            raise _NotLean
        grouped = self.collect_subfields(object_type, field_details_list).grouped_field_set
        names: dict[str, Any] = {}
        items: list[str] = []
        for response_key, details in grouped.items():
            name = details[0].node.name.value
            if name == "__typename":
                items.append(f"{response_key!r}: {object_type.name!r}")
                continue
            field = object_type.fields[name]
            attribute = field.extensions[GraphQLCoreConverter.DEFINITION_BACKREF].python_name
            if not attribute.isidentifier():
                raise _NotLean
            items.append(f"{response_key!r}: "
                         + self._expression(f"o.{attribute}", field.type, details, names))
        source = "def project(o):\n    return {" + ", ".join(items) + "}\n"
        exec(compile(source, f"<lean {object_type.name}>", "exec"), names)
        return names["project"]

    def _expression(self, value: str, output_type: GraphQLOutputType, details: Any,
                    names: dict[str, Any]) -> str:
        """Python expression turning `value` (of this type) into its response value."""
        required = isinstance(output_type, GraphQLNonNull)
        inner = output_type.of_type if required else output_type
        if isinstance(inner, GraphQLList):
            item = f"_i{len(names)}"
            names[item] = None  # reserve the name
            each = self._expression(item, inner.of_type, details, names)
            expression = f"[{each} for {item} in {value}]" if each != item else f"list({value})"
        elif is_leaf_type(inner):
            if isinstance(inner, GraphQLScalarType) and inner.name in _PLAIN_SCALARS:
                return value  # built by our own typed dataclasses: already the response value
            function = f"_f{len(names)}"
            names[function] = _leaf(self, inner)
            expression = f"{function}({value})"
        elif isinstance(inner, GraphQLObjectType):
            function = f"_f{len(names)}"
            names[function] = self._object_plan(inner, details)
            expression = f"{function}({value})"
        else:
            raise _NotLean
        if required:
            return expression
        return f"(None if {value} is None else {expression})"


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
