"""Property tests: no filter text ever reaches the query text."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queries.compiler import compile_filter
from queries.errors import FilterError
from tests.queries.skeleton import foreign_tokens
from topology.store.statement import Dialect

INJECTIONS = [
    "'", '"', "`", "//", "/*", "\n", "$(", "}) DETACH DELETE n //",
    "x' OR 1=1 //", "\") MATCH (n) DETACH DELETE n //", "`Service`", "${p0}", "$p0",
    "ünïcødé ☃ 𝔘", "\u202e", "\x00", "a\r\nb", "CALL db.labels()", "]; DROP",
]
FIELDS = ["server.namespace", "client.service.name", "service.name", "path", "method",
          "protocol", "client.label.team", "service.label.app"]
OPS = ["=", "!=", "contains", "startswith", "endswith"]


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _assert_clean(text: str) -> None:
    try:
        compiled = compile_filter(text)
    except FilterError as error:
        assert error.line >= 1 and error.column >= 1
        return
    for dialect in Dialect:
        assert foreign_tokens(compiled.predicate(dialect)) == [], text
        assert foreign_tokens(compiled.prelude(dialect)) == [], text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80))
def test_arbitrary_text_raises_filter_error_or_compiles_to_catalogue_words(text: str) -> None:
    _assert_clean(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab.=!~<>()[],\"' \\\n-andortxin")), max_size=40))
def test_grammar_shaped_text_never_escapes(text: str) -> None:
    _assert_clean(text)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(FIELDS), op=st.sampled_from(OPS),
       value=st.text(max_size=40).map(lambda v: "zq" + v))
def test_quoted_values_travel_only_as_parameters(field: str, op: str, value: str) -> None:
    """Values carry a marker ("zq") that no compiled text contains, so any leak shows."""
    try:
        compiled = compile_filter(f"{field} {op} {_quoted(value)}")
    except FilterError as error:
        assert error.code == "bad_label_value"
        return
    for dialect in Dialect:
        assert value not in compiled.predicate(dialect)
        assert foreign_tokens(compiled.predicate(dialect)) == []
    assert any(value.upper() in str(v) or value in str(v) for v in compiled.params.values())


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize("template", [
    "{raw}", "path = {raw}", "path = {quoted}", "server.namespace = {quoted}",
    "client.label.team contains {quoted}", "path =~ {quoted}", "{quoted}",
    "service.name in [{quoted}, x]",
])
def test_injection_corpus_is_rejected_or_parameterised(template: str, payload: str) -> None:
    text = template.format(raw=payload, quoted=_quoted(payload))
    _assert_clean(text)
    try:
        compiled = compile_filter(text)
    except FilterError:
        return
    if "{quoted}" in template:
        values = [v for value in compiled.params.values()
                  for v in (value if isinstance(value, list) else [value])]
        assert any(payload in value for value in values)
