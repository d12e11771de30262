"""A JSON Schema subset compiled to Python source: a fast yes/no check.

Interpreting a schema (jsonschema) costs about 700 µs per call record and
fastjsonschema's generated code about 11 µs; this generator emits plain
Python using set operations on keys, with `$defs` references inlined (a
function only for a cycle or deep nesting) and no type guard repeated after
a single-type check, and checks a call in a few microseconds. It only
decides: when it says no, jsonschema is asked for the message. It knows the
keywords the batch schema uses and refuses any other at compile time, so a
schema change it cannot honour fails loudly instead of passing bad data (a
differential test holds it to jsonschema).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "default", "examples",
                         "$comment", "$defs"})
_TYPE_TESTS = {
    "string": "type({v}) is str",
    "number": "(type({v}) is int or type({v}) is float)",
    "integer": "(type({v}) is int or (type({v}) is float and {v}.is_integer()))",
    "boolean": "type({v}) is bool",
    "object": "isinstance({v}, dict)",
    "array": "type({v}) is list",
    "null": "{v} is None",
}
_NUMBER = "(type({v}) is int or type({v}) is float)"
_SUPPORTED = frozenset({"$ref", "type", "enum", "minLength", "maxLength", "minimum", "maximum",
                        "properties", "required", "additionalProperties", "items"}) | ANNOTATIONS
_MISSING = object()
# Deepest indentation at which a reference is inlined: Python refuses more than
# 20 nested blocks, so deeper references become calls.
_INLINE_DEPTH = 12


class _Generator:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.functions: dict[str, str] = {}  # $ref -> function name
        self.sources: list[str] = []
        self.inlining: set[str] = set()  # references being inlined (a cycle gets a call)
        self.constants: dict[str, Any] = {"_MISSING": _MISSING}
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def constant(self, value: Any) -> str:
        name = self.name("C")
        self.constants[name] = value
        return name

    def target(self, ref: str) -> Mapping[str, Any]:
        if not ref.startswith("#/$defs/"):
            raise NotImplementedError(f"only local $defs references are compiled, not {ref}")
        return self.root["$defs"][ref.removeprefix("#/$defs/")]

    def function(self, ref: str) -> str:
        if ref not in self.functions:
            name = self.functions[ref] = self.name("check_")
            self.sources.append(self.define(name, self.target(ref)))
        return self.functions[ref]

    def define(self, name: str, schema: Mapping[str, Any]) -> str:
        lines = [f"def {name}(v0):"]
        self.body(schema, "v0", lines, 1)
        lines.append("    return True")
        return "\n".join(lines)

    def body(self, schema: Mapping[str, Any], v: str, out: list[str], depth: int) -> None:
        pad = "    " * depth
        unknown = set(schema) - _SUPPORTED
        if unknown:
            raise NotImplementedError(f"schema keywords not compiled: {sorted(unknown)}")
        if "$ref" in schema:
            ref = schema["$ref"]
            if ref in self.inlining or depth > _INLINE_DEPTH:
                out.append(f"{pad}if not {self.function(ref)}({v}): return False")
            else:  # inline: a call per record costs more than the check itself
                self.inlining.add(ref)
                self.body(self.target(ref), v, out, depth)
                self.inlining.discard(ref)
        types = None
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            test = " or ".join(_TYPE_TESTS[t].format(v=v) for t in types)
            out.append(f"{pad}if not ({test}): return False")
        # Past a single-type check the value's type is known: constraints need no guard.
        known = types[0] if types is not None and len(types) == 1 else None
        if "enum" in schema:
            values = schema["enum"]
            if all(isinstance(x, str) for x in values):
                out.append(f"{pad}if type({v}) is not str or {v} not in "
                           f"{self.constant(frozenset(values))}: return False")
            else:
                out.append(f"{pad}if not any(type({v}) is type(x) and {v} == x for x in "
                           f"{self.constant(tuple(values))}): return False")
        if "minLength" in schema or "maxLength" in schema:
            low, high = schema.get("minLength", 0), schema.get("maxLength")
            tests = ([f"len({v}) < {low}"] if low > 0 else []) + (
                [f"len({v}) > {high}"] if high is not None else [])
            if tests:
                guard = "" if known == "string" else f"type({v}) is str and "
                out.append(f"{pad}if {guard}({' or '.join(tests)}): return False")
        for key, op in (("minimum", "<"), ("maximum", ">")):
            if key in schema:
                guard = "" if known in ("number", "integer") else f"{_NUMBER.format(v=v)} and "
                out.append(f"{pad}if {guard}{v} {op} {schema[key]!r}: return False")
        if {"properties", "required", "additionalProperties"} & set(schema):
            self.object(schema, v, out, depth, checked=known == "object")
        if "items" in schema:
            item = self.name("v")
            if known == "array":
                out.append(f"{pad}for {item} in {v}:")
                self.body(schema["items"], item, out, depth + 1)
            else:
                out.append(f"{pad}if type({v}) is list:")
                out.append(f"{pad}    for {item} in {v}:")
                self.body(schema["items"], item, out, depth + 2)

    def object(self, schema: Mapping[str, Any], v: str, out: list[str], depth: int,
               checked: bool = False) -> None:
        """Object keywords; `checked`: the value is known to be a dict already."""
        pad = "    " * depth
        properties: Mapping[str, Any] = schema.get("properties", {})
        if checked:
            depth -= 1
            inner = pad
        else:
            out.append(f"{pad}if isinstance({v}, dict):")
            inner = pad + "    "
        required = schema.get("required", [])
        if required:
            out.append(f"{inner}if not {v}.keys() >= {self.constant(frozenset(required))}: "
                       "return False")
        extra = schema.get("additionalProperties", True)
        if extra is False:
            out.append(f"{inner}if not {v}.keys() <= {self.constant(frozenset(properties))}: "
                       "return False")
        for key, sub in properties.items():
            child = self.name("v")
            out.append(f"{inner}{child} = {v}.get({key!r}, _MISSING)")
            out.append(f"{inner}if {child} is not _MISSING:")
            self.body(sub, child, out, depth + 2)
            out.append(f"{inner}    pass")  # a property schema may emit no check
        if isinstance(extra, Mapping):
            key, child = self.name("k"), self.name("v")
            out.append(f"{inner}for {key}, {child} in {v}.items():")
            out.append(f"{inner}    if {key} in {self.constant(frozenset(properties))}: continue")
            self.body(extra, child, out, depth + 2)


def compile_check(schema: Mapping[str, Any]) -> Callable[[Any], bool]:
    """A function telling whether a document is valid against `schema`."""
    generator = _Generator(schema)
    entry = generator.define("check_root", schema)
    namespace: dict[str, Any] = dict(generator.constants)
    exec("\n\n".join([*generator.sources, entry]), namespace)  # source made from our schema
    return namespace["check_root"]
