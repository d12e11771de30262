"""Document limits checked before execution, with fragments expanded.

One validation rule measures every operation: depth (nesting of fields),
aliases and an estimated cost, counting a fragment's fields each time it is
spread, so fragment and alias bombs are refused before any store read. Cost:
each field counts 1 plus its selection's cost, and a list field multiplies its
selection's cost by LIST_FACTOR; a root field that reads the store adds
STORE_READ_COST, so a document asks for a handful of answers at most.
Introspection fields (`__schema`, `__type`) are governed by the introspection
setting, not measured here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)
from topology.api.graphql.errors import limit_error

LIST_FACTOR = 10
STORE_READ_COST = 2000  # a root field that reads the store: aliasing maps is not free
CHEAP_ROOT_FIELDS = frozenset({"validateFilter", "filterFields"})


@dataclass(frozen=True)
class Limits:
    depth: int
    aliases: int
    complexity: int


@dataclass
class Measure:
    depth: int = 0
    aliases: int = 0


def _unwrap(type_: Any) -> tuple[Any, bool]:
    is_list = False
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        is_list = is_list or isinstance(type_, GraphQLList)
        type_ = type_.of_type
    return type_, is_list


class _Walker:
    def __init__(self, fragments: dict[str, FragmentDefinitionNode], schema: Any,
                 root: Any) -> None:
        self.fragments = fragments
        self.schema = schema
        self.root = root
        self.measure = Measure()
        # (fragment, depth) -> (cost, deepest, aliases): each spread counts, but a fragment
        # is walked once per depth, so nested spreads cannot blow up the walk itself
        self.memo: dict[tuple[str, int], tuple[int, int, int]] = {}

    def cost(self, selections: SelectionSetNode | None, parent: Any, depth: int,
             spreading: frozenset[str]) -> int:
        if selections is None:
            return 0
        total = 0
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                total += self._field(selection, parent, depth, spreading)
            elif isinstance(selection, InlineFragmentNode):
                inner = parent
                if selection.type_condition is not None:
                    inner = self.schema.get_type(selection.type_condition.name.value) or parent
                total += self.cost(selection.selection_set, inner, depth, spreading)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in spreading:
                    continue  # unknown or cyclic: the standard rules report it
                total += self._spread(fragment, parent, depth, spreading | {name})
        return total

    def _spread(self, fragment: FragmentDefinitionNode, parent: Any, depth: int,
                spreading: frozenset[str]) -> int:
        key = (fragment.name.value, depth)
        known = self.memo.get(key)
        if known is None:
            outer = self.measure
            self.measure = Measure()
            inner = self.schema.get_type(fragment.type_condition.name.value) or parent
            cost = self.cost(fragment.selection_set, inner, depth, spreading)
            known = self.memo[key] = (cost, self.measure.depth, self.measure.aliases)
            self.measure = outer
        self.measure.depth = max(self.measure.depth, known[1])
        self.measure.aliases += known[2]
        return known[0]

    def _field(self, node: FieldNode, parent: Any, depth: int, spreading: frozenset[str]) -> int:
        if node.alias is not None:
            self.measure.aliases += 1
        name = node.name.value
        if name.startswith("__"):
            return 0
        self.measure.depth = max(self.measure.depth, depth + 1)
        if not isinstance(parent, GraphQLObjectType) or name not in parent.fields:
            return 1
        inner, is_list = _unwrap(parent.fields[name].type)
        below = self.cost(node.selection_set, inner, depth + 1, spreading)
        own = STORE_READ_COST if parent is self.root and name not in CHEAP_ROOT_FIELDS else 1
        return own + below * (LIST_FACTOR if is_list else 1)


def rule(limits: Limits) -> type[ValidationRule]:
    class DocumentLimits(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            document = context.document
            fragments = {d.name.value: d for d in document.definitions
                         if isinstance(d, FragmentDefinitionNode)}
            schema = context.schema
            for definition in document.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                root = schema.get_root_type(definition.operation)
                walker = _Walker(fragments, schema, root)
                cost = walker.cost(definition.selection_set, root, 0, frozenset())
                found = walker.measure
                label = definition.name.value if definition.name else "the operation"
                if found.depth > limits.depth:
                    context.report_error(limit_error(
                        f"{label} nests {found.depth} levels deep; at most {limits.depth}"))
                if found.aliases > limits.aliases:
                    context.report_error(limit_error(
                        f"{label} uses {found.aliases} aliases; at most {limits.aliases}"))
                if cost > limits.complexity:
                    context.report_error(limit_error(
                        f"{label} costs an estimated {cost}; at most {limits.complexity}"))

    return DocumentLimits
