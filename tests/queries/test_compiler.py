"""What filters compile to, in both dialects."""

from __future__ import annotations

import pytest

from queries.catalogue import CATALOGUE, FieldType, resolve
from queries.compiler import compile_filter
from tests.queries.corpus import CORPUS
from tests.queries.skeleton import foreign_tokens
from topology.model import EXTERNAL_KINDS
from topology.store.statement import Dialect

SEARCH = "(?s).*(?:{}).*"

# (filter, neo4j predicate, ladybug predicate or None when the same, params)
CASES = [
    ("", "true", None, {}),
    ("server.namespace = metoro", "s.namespace = $p0", None, {"p0": "metoro"}),
    ("client.namespace = metoro", "c.namespace = $p0", None, {"p0": "metoro"}),
    ("server.service.name = api.stripe.com", "s.name = $p0", None, {"p0": "api.stripe.com"}),
    ("client.service.name = metoro-apiserver", "c.name = $p0", None,
     {"p0": "metoro-apiserver"}),
    ("v1.traces", "k.path =~ $p0", None, {"p0": SEARCH.format("v1.traces")}),
    ("service.name = a", "(c.name = $p0 OR s.name = $p0)", None, {"p0": "a"}),
    ("service.namespace != kube-system", "NOT ((c.namespace = $p0 OR s.namespace = $p0))",
     None, {"p0": "kube-system"}),
    ("server.kind in [Deployment, Process]", "s.kind IN $p0", None,
     {"p0": ["Deployment", "Process"]}),
    ("client.external = true", "c.kind IN $p0", None, {"p0": list(EXTERNAL_KINDS)}),
    ("client.external = false", "NOT (c.kind IN $p0)", None, {"p0": list(EXTERNAL_KINDS)}),
    ("status >= 500", "(k.status[5] > 0)", "(k.s5 > 0)", {}),
    ("status != 2xx", "(k.status[1] > 0 OR k.status[3] > 0 OR k.status[4] > 0 OR "
     "k.status[5] > 0)", "(k.s1 > 0 OR k.s3 > 0 OR k.s4 > 0 OR k.s5 > 0)", {}),
    ("status = 600", "false", None, {}),
    ("error = true", "k.errors > 0", None, {}),
    ("error = false", "k.errors < k.requests", None, {}),
    ("method in [get, Post]", "k.method IN $p0", None, {"p0": ["GET", "POST"]}),
    ("path !~ health", "NOT (k.path =~ $p0)", None, {"p0": SEARCH.format("health")}),
    ('path =~ "(?i)V1"', "k.path =~ $p0", None, {"p0": "(?s).*(?i:V1).*"}),
    ("path startswith /api", "k.path STARTS WITH $p0", None, {"p0": "/api"}),
    ("client.label.team = shop", "$p0 IN c.labels", None, {"p0": "team=shop"}),
    ("server.label.tier in [web, api]", "($p0 IN s.labels OR $p1 IN s.labels)", None,
     {"p0": "tier=web", "p1": "tier=api"}),
    ("client.label.team contains ho",
     "any(l IN c.labels WHERE l STARTS WITH $p0 AND substring(l, size($p0)) CONTAINS $p1)",
     "any(l IN c.labels WHERE l STARTS WITH p0 AND substring(l, size(p0) + 1, size(l)) "
     "CONTAINS p1)", {"p0": "team=", "p1": "ho"}),
    ("a b or not c",
     "((k.path =~ $p0 AND k.path =~ $p1) OR NOT (k.path =~ $p2))", None,
     {"p0": SEARCH.format("a"), "p1": SEARCH.format("b"), "p2": SEARCH.format("c")}),
    ("a or b and c", "(k.path =~ $p0 OR (k.path =~ $p1 AND k.path =~ $p2))", None,
     {"p0": SEARCH.format("a"), "p1": SEARCH.format("b"), "p2": SEARCH.format("c")}),
    ('path = "a \\"b\\" \\\\ \\n"', "k.path = $p0", None, {"p0": 'a "b" \\ \n'}),
    ("path = not", "k.path = $p0", None, {"p0": "not"}),
]


@pytest.mark.parametrize(("text", "neo4j", "ladybug", "params"), CASES)
def test_compiles_to(text: str, neo4j: str, ladybug: str | None, params: dict) -> None:
    compiled = compile_filter(text)
    assert compiled.predicate(Dialect.NEO4J) == neo4j
    assert compiled.predicate(Dialect.LADYBUG) == (ladybug or neo4j)
    assert compiled.params == params


def test_label_predicates_bind_their_parameters_for_ladybug() -> None:
    compiled = compile_filter("client.label.team endswith op")
    assert compiled.prelude(Dialect.LADYBUG) == "WITH $p0 AS p0, $p1 AS p1 "
    assert compiled.prelude(Dialect.NEO4J) == ""
    assert compile_filter("client.label.team = x").prelude(Dialect.LADYBUG) == ""


@pytest.mark.parametrize(("text", "rules"), CORPUS, ids=[rules for _, rules in CORPUS])
def test_corpus_compiles_to_catalogue_words_only(text: str, rules: str) -> None:
    compiled = compile_filter(text)
    for dialect in Dialect:
        assert foreign_tokens(compiled.predicate(dialect)) == []
        assert foreign_tokens(compiled.prelude(dialect)) == []


def test_variables_name_the_nodes_a_filter_reads() -> None:
    assert compile_filter("").variables == frozenset()
    assert compile_filter("v1").variables == {"k"}
    assert compile_filter("server.namespace = a").variables == {"s"}
    assert compile_filter("service.name = a status >= 500").variables == {"c", "s", "k"}


def test_catalogue_covers_every_documented_field() -> None:
    names = {field.name for field in CATALOGUE}
    for side in ("client", "server"):
        for suffix in ("namespace", "service.name", "kind", "cluster", "external",
                       "label.<key>"):
            assert f"{side}.{suffix}" in names
    assert {"service.name", "service.namespace", "service.label.<key>", "path", "method",
            "protocol", "status", "error"} <= names
    assert all(field.description and field.example for field in CATALOGUE)
    assert resolve("status").field.type is FieldType.NUMBER
    assert resolve("server.external").field.type is FieldType.BOOL
    assert resolve("server.label.app.kubernetes.io/name").label_key == "app.kubernetes.io/name"


def test_corpus_covers_every_rule_and_terminal_of_the_grammar() -> None:
    from importlib import resources

    from lark import Lark, Token

    grammar = resources.files("queries").joinpath("filter.lark").read_text(encoding="utf-8")
    full = Lark(grammar, parser="lalr", lexer="contextual", keep_all_tokens=True)
    rules, terminals = set(), set()
    for text, _ in CORPUS:
        tree = full.parse(text)
        rules |= {subtree.data for subtree in tree.iter_subtrees()}
        terminals |= {t.type for t in tree.scan_values(lambda v: isinstance(v, Token))}
    # rules that can show in a tree: not inlined (?rule with one symbol, _rule, lark's own)
    named = {
        str(rule.alias or rule.origin.name) for rule in full.rules
        if not (rule.options.expand1 and len(rule.expansion) == 1 and not rule.alias)
        and not str(rule.origin.name).startswith("_")
    }
    assert named - {str(r) for r in rules} == set()
    assert {"comparison", "membership", "term", "negated", "list"} <= named
    ignored = set(full.ignore_tokens)
    assert {t.name for t in full.terminals} - ignored - terminals == set()
