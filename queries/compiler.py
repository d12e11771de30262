"""Compile a filter to a Cypher predicate over `c` (client), `s` (server), `k` (bucket).

The predicate is built for both dialects at once; values go to generated
parameters `$p0, $p1, ...` and property names come only from the catalogue
(`queries/catalogue.py`), so no filter text reaches the query text.

A filter selects CallBucket aggregates: a bucket matches `status >= 500` when
it holds at least one 5xx call, `error = true` when it holds an error, and
`error = false` when it holds a call without error. `service.<field>` reads
either end; with `!=` and `!~` it means neither end matches (`service.namespace
!= kube-system` keeps calls that touch no kube-system service).

LadybugDB cannot read a `$parameter` inside a list predicate (`any(l IN ...)`),
so label predicates there read a variable bound by `prelude()`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from lark import Token, Transformer, Tree, v_args
from lark.exceptions import VisitError

from queries import catalogue, regex
from queries.catalogue import FieldType, Kind, Target
from queries.errors import MAX_LIST, FilterError
from queries.parser import parse
from queries.values import Value, boolean, status_classes
from topology.model import EXTERNAL_KINDS, SERVICE_KINDS
from topology.store.statement import Dialect

_STRING_OPS = {"=", "!=", "=~", "!~", "in", "contains", "startswith", "endswith"}
_OPS_BY_TYPE = {
    FieldType.STRING: _STRING_OPS,
    FieldType.NUMBER: {"=", "!=", "<", "<=", ">", ">=", "in"},
    FieldType.BOOL: {"=", "!="},
}
_CYPHER_OP = {"=": "=", "contains": "CONTAINS", "startswith": "STARTS WITH",
              "endswith": "ENDS WITH", "=~": "=~", "in": "IN"}
_KEYWORDS = {"and", "or", "not"}
_NEGATED = {"!=": "=", "!~": "=~"}


@dataclass(frozen=True)
class Pred:
    neo4j: str
    ladybug: str

    @classmethod
    def same(cls, text: str) -> Pred:
        return cls(text, text)


TRUE = Pred.same("true")
FALSE = Pred.same("false")


@dataclass(frozen=True)
class CompiledFilter:
    """A WHERE predicate in both dialects, with its parameters."""

    neo4j: str
    ladybug: str
    param_items: tuple[tuple[str, Any], ...]
    bindings: tuple[str, ...] = ()  # parameters LadybugDB reads as variables
    variables: frozenset[str] = field(default_factory=frozenset)  # of c, s, k
    # reads a bucket's counters (status, error): matches depend on the bucket width,
    # so such a filter reads the finest buckets, never pre-aggregated tiers
    per_bucket: bool = False

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.param_items)

    def predicate(self, dialect: Dialect) -> str:
        return self.neo4j if dialect is Dialect.NEO4J else self.ladybug

    def prelude(self, dialect: Dialect) -> str:
        """Clause to put before the query's first MATCH (LadybugDB label predicates)."""
        if dialect is Dialect.NEO4J or not self.bindings:
            return ""
        return "WITH " + ", ".join(f"${name} AS {name}" for name in self.bindings) + " "


@v_args(inline=True)
class _ToCypher(Transformer):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.params: dict[str, Any] = {}
        self.bindings: list[str] = []
        self.variables: set[str] = set()
        self.per_bucket = False

    # -- structure ---------------------------------------------------------

    def start(self, expr: Pred | None = None) -> Pred:
        return expr if expr is not None else TRUE

    def disjunction(self, *parts: Pred) -> Pred:
        return _join(parts, " OR ")

    def conjunction(self, *parts: Pred) -> Pred:
        return _join(parts, " AND ")

    def negated(self, part: Pred) -> Pred:
        return Pred(f"NOT ({part.neo4j})", f"NOT ({part.ladybug})")

    def value(self, token: Token) -> Value:
        return Value.of(token, self.text)

    def list(self, open_token: Token, *items: Value | Token | None) -> list[Value]:
        values = [item for item in items if isinstance(item, Value)]
        if not values:
            raise self._error("empty_list", open_token)
        if len(values) > MAX_LIST:
            raise self._error("list_too_long", values[MAX_LIST].token, limit=MAX_LIST)
        return values

    # -- terms -------------------------------------------------------------

    def term(self, token: Token) -> Pred:
        if token.type == "WORD" and token.lower() in _KEYWORDS:
            raise self._error("missing_term", token)
        value = Value.of(token, self.text)
        self.variables.add(catalogue.CALL)
        return self._regex("k.path", value)

    def membership(self, name: Token, op: Token, values: list[Value]) -> Pred:
        return self._compare(name, op, "in", values)

    def comparison(self, name: Token, op: Token, value: Value) -> Pred:
        return self._compare(name, op, str(op).lower(), [value])

    def _compare(self, name: Token, op_token: Token, op: str, values: list[Value]) -> Pred:
        target = catalogue.resolve(str(name))
        if target is None:
            hint = catalogue.suggest(str(name))
            raise self._error("unknown_field", name, field=str(name),
                              hint=f"; did you mean {hint!r}?" if hint else "")
        allowed = _OPS_BY_TYPE[target.field.type]
        if op not in allowed:
            raise self._error("type_mismatch", op_token, op=op, type=target.field.type.value,
                              field=str(name), allowed=", ".join(sorted(allowed)))
        self.variables.update(target.variables)
        if target.kind in (Kind.STATUS, Kind.ERROR):
            self.per_bucket = True
        if target.kind is Kind.STATUS:
            return self._status(name, op, values)
        if target.kind is Kind.ERROR:
            wanted = boolean(values[0], str(name), self.text) == (op == "=")
            return Pred.same("k.errors > 0" if wanted else "k.errors < k.requests")
        if target.kind is Kind.EXTERNAL:
            wanted = boolean(values[0], str(name), self.text) == (op == "=")
            kinds = self._param(list(EXTERNAL_KINDS))
            return self._ends(target, lambda v: Pred.same(
                f"{v}.kind IN ${kinds}" if wanted else f"NOT ({v}.kind IN ${kinds})"))
        if op in _NEGATED:
            positive = self._positive(target, _NEGATED[op], values)
            return Pred(f"NOT ({positive.neo4j})", f"NOT ({positive.ladybug})")
        return self._positive(target, op, values)

    def _positive(self, target: Target, op: str, values: list[Value]) -> Pred:
        if target.kind is Kind.LABEL:
            return self._ends(target, lambda v: self._label(v, target.label_key, op, values))
        if target.prop == "kind" and op in ("=", "in"):
            for value in values:
                self._check_kind(value)
        if target.prop == "method" and op in ("=", "in"):
            values = [value.upper() for value in values]
        if op == "=~":
            return self._ends(target, lambda v: self._regex(f"{v}.{target.prop}", values[0]))
        param = self._param([v.text for v in values] if op == "in" else values[0].text)
        return self._ends(target, lambda v: Pred.same(
            f"{v}.{target.prop} {_CYPHER_OP[op]} ${param}"))

    def _ends(self, target: Target, build: Callable[[str], Pred]) -> Pred:
        return _join([build(variable) for variable in target.variables], " OR ")

    def _label(self, var: str, key: str, op: str, values: list[Value]) -> Pred:
        for value in values:
            if "\n" in value.text or "\r" in value.text:
                raise self._error("bad_label_value", value.token)
        if op in ("=", "in"):
            names = [self._param(f"{key}={value.text}") for value in values]
            return _join([Pred.same(f"${name} IN {var}.labels") for name in names], " OR ")
        prefix = self._param(f"{key}=")
        if op == "=~":
            operand = self._param(self._pattern(values[0]))
        else:
            operand = self._param(values[0].text)
        self.bindings.extend((prefix, operand))
        rest_neo = f"substring(l, size(${prefix}))"
        rest_lb = f"substring(l, size({prefix}) + 1, size(l))"
        cypher_op = _CYPHER_OP[op]
        return Pred(
            f"any(l IN {var}.labels WHERE l STARTS WITH ${prefix} "
            f"AND {rest_neo} {cypher_op} ${operand})",
            f"any(l IN {var}.labels WHERE l STARTS WITH {prefix} "
            f"AND {rest_lb} {cypher_op} {operand})",
        )

    def _regex(self, subject: str, value: Value) -> Pred:
        return Pred.same(f"{subject} =~ ${self._param(self._pattern(value))}")

    def _pattern(self, value: Value) -> str:
        try:
            return regex.searching(value.text)
        except regex.RegexError as exc:
            code = "bad_regex"
            if "not supported" in exc.message:
                code = "unportable_regex"
            elif "longer than" in exc.message:
                code = "pattern_too_long"
            raise FilterError.at_offset(
                code, self.text, value.offset(exc.offset), detail=exc.message
            ) from None

    def _status(self, name: Token, op: str, values: list[Value]) -> Pred:
        wanted: set[int] = set()
        for value in values:
            wanted |= status_classes(op, value, str(name), self.text)
        if not wanted:
            return FALSE
        return Pred(
            "(" + " OR ".join(f"k.status[{i}] > 0" for i in sorted(wanted)) + ")",
            "(" + " OR ".join(f"k.s{i} > 0" for i in sorted(wanted)) + ")",
        )

    def _check_kind(self, value: Value) -> None:
        if value.text not in SERVICE_KINDS:
            lowered = {kind.lower(): kind for kind in SERVICE_KINDS}
            close = lowered.get(value.text.lower())
            hint = f"; did you mean {close!r}?" if close else (
                "; kinds are " + ", ".join(SERVICE_KINDS))
            raise self._error("unknown_kind", value.token, value=value.text, hint=hint)

    # -- helpers -----------------------------------------------------------

    def _param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return name

    def _error(self, code: str, token: Token, **details: object) -> FilterError:
        return FilterError.at_offset(code, self.text, token.start_pos or 0, **details)


def _join(parts: Sequence[Pred], glue: str) -> Pred:
    if len(parts) == 1:
        return parts[0]
    return Pred(
        "(" + glue.join(p.neo4j for p in parts) + ")",
        "(" + glue.join(p.ladybug for p in parts) + ")",
    )


@lru_cache(maxsize=512)
def compile_filter(text: str) -> CompiledFilter:
    """Compile filter text; raise FilterError (with line and column) when it is wrong."""
    tree: Tree = parse(text)
    transformer = _ToCypher(text)
    try:
        pred: Pred = transformer.transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, FilterError):
            raise exc.orig_exc from None
        raise
    return CompiledFilter(
        pred.neo4j, pred.ladybug, tuple(transformer.params.items()),
        tuple(dict.fromkeys(transformer.bindings)), frozenset(transformer.variables),
        transformer.per_bucket,
    )
