"""The query brain: the filter language compiled to Cypher, and the named graph queries.

Each query takes a `GraphStore` and returns frozen dataclasses; see
docs/filter-language.md for the filter syntax and its meaning.
"""

from queries.catalogue import CATALOGUE, Field, FieldType
from queries.compiler import CompiledFilter, compile_filter
from queries.diff import WindowDiff, window_diff
from queries.errors import FilterError
from queries.external import ExternalDependency, external_dependencies
from queries.recovery import RecoveryOrder, recovery_order
from queries.service_map import ServiceDetail, ServiceMap, service_detail, service_map
from queries.services import ServiceNode, UnknownService
from queries.traversal import BlastRadius, Dependencies, Direction, blast_radius, dependencies
from queries.window import Thresholds, Window

__all__ = [
    "CATALOGUE", "BlastRadius", "CompiledFilter", "Dependencies", "Direction",
    "ExternalDependency", "Field", "FieldType", "FilterError", "RecoveryOrder", "ServiceDetail",
    "ServiceMap", "ServiceNode", "Thresholds", "UnknownService", "Window", "WindowDiff",
    "blast_radius", "compile_filter", "dependencies", "external_dependencies", "recovery_order",
    "service_detail", "service_map", "window_diff",
]
