"""The fields a filter may name: the only source of property names in compiled Cypher.

Every field resolves to a `Target`: which node it reads (`c` the client
Service, `s` the server Service, both for `service.*`, or `k` the CallBucket)
and which property. The API publishes `CATALOGUE` for autocomplete.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from enum import StrEnum

CLIENT = "c"
SERVER = "s"
CALL = "k"


class FieldType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOL = "bool"


class Kind(StrEnum):
    """How a field maps to the graph model (docs/storage.md)."""

    PROPERTY = "property"  # a plain string property
    EXTERNAL = "external"  # Service.kind in the external kinds
    LABEL = "label"  # one key of Service.labels ("key=value" strings)
    STATUS = "status"  # CallBucket.status counts per status class
    ERROR = "error"  # CallBucket.errors > 0


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    description: str
    example: str


@dataclass(frozen=True)
class Target:
    """A resolved field: the variables it reads and the property or rule."""

    field: Field
    variables: tuple[str, ...]  # ("c",), ("s",), ("c", "s") for either end, ("k",)
    kind: Kind
    prop: str = ""  # property name, from the tables below only
    label_key: str = ""

    @property
    def either_end(self) -> bool:
        return len(self.variables) > 1


# (suffix, property, kind, type, description, example value)
_SERVICE_FIELDS: tuple[tuple[str, str, Kind, FieldType, str, str], ...] = (
    ("namespace", "namespace", Kind.PROPERTY, FieldType.STRING,
     "Kubernetes namespace of the service (empty outside Kubernetes)", "shop"),
    ("service.name", "name", Kind.PROPERTY, FieldType.STRING,
     "service name: workload, process, or external hostname", "checkout"),
    ("kind", "kind", Kind.PROPERTY, FieldType.STRING,
     "Deployment, StatefulSet, DaemonSet, ReplicaSet, Process, \"External service\", "
     "\"External client\" or \"Unknown external\"", "Deployment"),
    ("cluster", "cluster", Kind.PROPERTY, FieldType.STRING,
     "cluster the service runs in", "prod-eu"),
    ("external", "kind", Kind.EXTERNAL, FieldType.BOOL,
     "true for external services, external clients and unknown externals", "true"),
)
_SIDES = (("client", (CLIENT,), "calling"), ("server", (SERVER,), "called"),
          ("service", (CLIENT, SERVER), "either"))

# (name, property, kind, type, description, example value)
_CALL_FIELDS: tuple[tuple[str, str, Kind, FieldType, str, str], ...] = (
    ("path", "path", Kind.PROPERTY, FieldType.STRING,
     "path template of the call (ids folded into placeholders)", "/api/v1/orders"),
    ("method", "method", Kind.PROPERTY, FieldType.STRING, "request method", "POST"),
    ("protocol", "protocol", Kind.PROPERTY, FieldType.STRING,
     "protocol of the call", "http"),
    ("status", "status", Kind.STATUS, FieldType.NUMBER,
     "response status, compared per class: status >= 500, status = 4xx", "500"),
    ("error", "errors", Kind.ERROR, FieldType.BOOL,
     "true for calls that failed (5xx or marked failed)", "true"),
)

LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/]{0,252}")


def _build() -> tuple[dict[str, Target], tuple[Field, ...]]:
    targets: dict[str, Target] = {}
    published: list[Field] = []
    for side, variables, who in _SIDES:
        for suffix, prop, kind, ftype, description, example in _SERVICE_FIELDS:
            name = "service.name" if (side, suffix) == ("service", "service.name") else (
                f"{side}.{suffix}")
            what = "either end of the call" if who == "either" else f"the {who} service"
            field = Field(name, ftype, f"{description}; of {what}", example)
            targets[name] = Target(field, variables, kind, prop)
            published.append(field)
        published.append(Field(
            f"{side}.label.<key>", FieldType.STRING,
            f"value of a label of {'either end' if who == 'either' else 'the ' + who + ' service'}",
            "shop",
        ))
    for name, prop, kind, ftype, description, example in _CALL_FIELDS:
        field = Field(name, ftype, description, example)
        targets[name] = Target(field, (CALL,), kind, prop)
        published.append(field)
    return targets, tuple(published)


_TARGETS, CATALOGUE = _build()
BARE_TERM = Field(
    "<bare term>", FieldType.STRING,
    "a word or quoted string alone is a regular expression searched in the path",
    "v1.traces",
)


def resolve(name: str) -> Target | None:
    """The target of a field name, or None when the catalogue has no such field."""
    target = _TARGETS.get(name)
    if target is not None:
        return target
    for side, variables, _ in _SIDES:
        prefix = f"{side}.label."
        if name.startswith(prefix) and LABEL_KEY.fullmatch(name[len(prefix):]):
            field = Field(f"{side}.label.<key>", FieldType.STRING, "label value", "shop")
            return Target(field, variables, Kind.LABEL, "labels", name[len(prefix):])
    return None


def suggest(name: str) -> str | None:
    """The closest field name, for "did you mean" hints."""
    candidates = [*_TARGETS, *(f"{side}.label." for side, _, _ in _SIDES)]
    for side, _, _ in _SIDES:
        if name.startswith(f"{side}.labels."):
            return f"{side}.label." + name[len(side) + len(".labels."):]
    bare = name.split(".", 1)[1] if name.split(".", 1)[0] in ("client", "server") else name
    if bare in ("name", "namespace", "kind", "cluster", "external"):
        side = name.split(".", 1)[0] if bare != name else "service"
        return f"{side}.{'service.name' if bare == 'name' else bare}"
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None
