"""The lean executor's JSON path: a selection over a `Columns` list, as the template
`json_columns.py` encodes it (used when the context sets `JSON_FRAGMENTS`).

The template has the fields, paths and fallbacks of the executor's dict
projection (`executor._columns_source`): the same columns are read, the
same selections fall back to the row objects, and each leaf's values go
through the dict path's own value function unless they are plain scalars.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from strawberry.schema.schema_converter import GraphQLCoreConverter

from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
)
from topology.api.graphql import json_columns as jc

JSON_FRAGMENTS = "json_fragments"  # context key: encode `Columns` lists as JSON fragments
JSON = "_json"  # the name prefix of the generated functions that encode them
PLAIN_SCALARS = frozenset({"String", "Int", "Float", "Boolean", "ID"})
TEXT_SCALARS = frozenset({"String", "ID"})


class NotLean(Exception):
    """Some type in the selection needs the standard path."""


TYPENAME, OBJECT, OBJECTS, LEAF = "typename", "object", "objects", "leaf"


class ColumnFields:
    """How a selection over a `Columns` list reads each field, shared by the dict
    projection (`executor._columns_source`) and the JSON template (`_json_fields`)."""

    _lean_fields: Any

    def _column_fields(self, object_type: GraphQLObjectType, field_details_list: Any,
                       prefix: str) -> Iterator[tuple[str, Any, str, str, Any]]:
        """(response key, details, kind, attribute path, type) per selected field:
        kind TYPENAME (type: the object type's name), OBJECT (a nested object: its
        type), OBJECTS (a list of objects: the items' type) or LEAF (the field's
        type); NotLean for a nullable object or list, which no column stands for."""
        for response_key, details, field in self._lean_fields(object_type, field_details_list):
            if field is None:
                yield response_key, details, TYPENAME, prefix, object_type.name
                continue
            path = prefix + field.extensions[GraphQLCoreConverter.DEFINITION_BACKREF].python_name
            inner = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
            if isinstance(inner, GraphQLObjectType):
                if inner is field.type:
                    raise NotLean  # a null object has no columns to stand for it
                yield response_key, details, OBJECT, path, inner
            elif isinstance(inner, GraphQLList) and isinstance(inner.of_type, GraphQLNonNull) \
                    and isinstance(inner.of_type.of_type, GraphQLObjectType):
                if inner is field.type:
                    raise NotLean
                yield response_key, details, OBJECTS, path, inner.of_type.of_type
            else:
                yield response_key, details, LEAF, path, field.type


class JsonColumns(ColumnFields):
    """Mixed into `executor.LeanExecutionContext`, whose `_lean_fields`, `_name` and
    `_value_function` it uses."""

    _name: Any
    _value_function: Any

    def _json_columnar(self, object_type: GraphQLObjectType, details: Any,
                       names: dict[str, Any]) -> str | None:
        """`_columnar` encoding the list as one JSON fragment (see json_columns.py)."""
        builder = jc.TemplateBuilder()
        try:
            self._json_fields(object_type, details, "", builder)
        except NotLean:
            return None
        template = builder.build()
        function = self._name(JSON, names)
        names[function] = lambda v: template.array(v.raw, len(v))
        return function

    def _json_fields(self, object_type: GraphQLObjectType, field_details_list: Any,
                     prefix: str, builder: jc.TemplateBuilder) -> None:
        """`_columns_source` as a JSON template: the same fields, paths and fallbacks."""
        for response_key, details, kind, path, of in self._column_fields(
                object_type, field_details_list, prefix):
            builder.key(response_key)
            if kind == TYPENAME:
                builder.constant(of)
            elif kind == OBJECT:
                builder.open()
                self._json_fields(of, details, path + ".", builder)
                builder.close()
            elif kind == OBJECTS:
                items = jc.TemplateBuilder()
                self._json_fields(of, details, "", items)
                template = items.build()
                if template.count_by is None:
                    raise NotLean  # nothing to count the items by
                builder.nested(path, template)
            else:
                builder.leaf(path, self._json_leaf(of, details))

    def _json_leaf(self, output_type: GraphQLOutputType, details: Any) -> jc.Encode:
        """How a column of this (non-object) type is encoded."""
        inner = output_type.of_type if isinstance(output_type, GraphQLNonNull) else output_type
        if isinstance(inner, GraphQLScalarType) and inner.name in PLAIN_SCALARS:
            return jc.strings if inner.name in TEXT_SCALARS else jc.numbers
        if inner is not output_type and isinstance(inner, GraphQLList):
            item = inner.of_type.of_type if isinstance(inner.of_type, GraphQLNonNull) \
                else inner.of_type
            if isinstance(item, GraphQLScalarType) and item.name in PLAIN_SCALARS:
                return jc.lists
        value = self._value_function(output_type, details)
        if isinstance(inner, GraphQLEnumType):
            return jc.by_identity(value)  # members are singletons
        return jc.converted(value)

