"""The service map as a diagram: Mermaid, Graphviz DOT or JSON.

Node ids in the diagram are positional (s0, s1, ...) so nothing a service is
called can break the syntax; names appear only inside quoted labels, escaped
for the target format. Edges carry protocols, request count, error rate and
p99; edges above the degraded error rate are drawn red.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the queries package (lark) only when a diagram is drawn
    from queries.service_map import Edge, ServiceMap
    from queries.services import ServiceNode

FORMATS = ("mermaid", "dot", "json")


def node_label(node: ServiceNode) -> str:
    return f"{node.namespace}/{node.name}" if node.namespace else node.name or node.id


def edge_label(edge: Edge) -> str:
    parts = [",".join(edge.protocols), f"{edge.requests} req"]
    if edge.errors:
        parts.append(f"{edge.error_rate:.1%} err")
    if edge.p99_ms is not None:
        parts.append(f"p99 {edge.p99_ms:.4g} ms")
    return " · ".join(parts)


def _degraded(edge: Edge) -> bool:
    from queries.window import Thresholds

    return edge.error_rate > Thresholds().error_rate


def _ids(graph: ServiceMap) -> dict[str, str]:
    return {node.id: f"s{index}" for index, node in enumerate(graph.services)}


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("\n", " ")


def mermaid(graph: ServiceMap) -> str:
    ids = _ids(graph)
    lines = ["flowchart LR"]
    for node in graph.services:
        shape = ('(["', '"])') if node.external else ('["', '"]')
        lines.append(f"    {ids[node.id]}{shape[0]}{_mermaid_text(node_label(node))}{shape[1]}")
    red: list[str] = []
    for index, edge in enumerate(graph.edges):
        lines.append(f'    {ids[edge.client]} -->|"{_mermaid_text(edge_label(edge))}"|'
                     f" {ids[edge.server]}")
        if _degraded(edge):
            red.append(str(index))
    if red:
        lines.append(f"    linkStyle {','.join(red)} stroke:#d32f2f,stroke-width:2px")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def dot(graph: ServiceMap) -> str:
    ids = _ids(graph)
    lines = ["digraph topology {", "    rankdir=LR;", "    node [shape=box, style=rounded];"]
    for node in graph.services:
        extra = ", style=dashed" if node.external else ""
        lines.append(f"    {ids[node.id]} [label={_dot_text(node_label(node))}{extra}];")
    for edge in graph.edges:
        extra = ', color="#d32f2f"' if _degraded(edge) else ""
        lines.append(f"    {ids[edge.client]} -> {ids[edge.server]}"
                     f" [label={_dot_text(edge_label(edge))}{extra}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def as_json(graph: ServiceMap) -> str:
    document: dict[str, Any] = {
        "window": {"since": graph.window.since, "until": graph.window.until},
        "services": [{**asdict(node), "labels": list(node.labels)} for node in graph.services],
        "edges": [asdict(edge) for edge in graph.edges],
    }
    return json.dumps(document, indent=2) + "\n"


def render(graph: ServiceMap, fmt: str) -> str:
    if fmt == "mermaid":
        return mermaid(graph)
    if fmt == "dot":
        return dot(graph)
    if fmt == "json":
        return as_json(graph)
    raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
