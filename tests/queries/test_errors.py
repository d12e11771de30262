"""The friendly-message table drives this test: every example yields its own code."""

from __future__ import annotations

import pytest

from queries.compiler import compile_filter
from queries.errors import MISTAKES, FilterError

EXAMPLES = [(m.code, example) for m in MISTAKES for example in m.examples]


@pytest.mark.parametrize(("code", "text"), EXAMPLES, ids=[f"{c}:{t[:30]}" for c, t in EXAMPLES])
def test_each_example_yields_its_mistake(code: str, text: str) -> None:
    with pytest.raises(FilterError) as caught:
        compile_filter(text)
    assert caught.value.code == code, str(caught.value)
    assert caught.value.line >= 1 and caught.value.column >= 1


def test_every_mistake_but_the_generic_one_has_examples() -> None:
    assert [m.code for m in MISTAKES if not m.examples] == ["unexpected"]


# (filter, code, line, column, words the message must contain)
POSITIONS = [
    ("server.namespce = shop", "unknown_field", 1, 1, "'server.namespace'"),
    ("server.namespace = shop and statuss >= 500", "unknown_field", 1, 29, "'status'"),
    ("client.name = a", "unknown_field", 1, 1, "'client.service.name'"),
    ('path = "/api', "unclosed_quote", 1, 8, '"'),
    ("path = 'a", "unclosed_quote", 1, 8, "'"),
    ("(path = a", "unclosed_paren", 1, 1, "')'"),
    ("a or (b and (c or d)", "unclosed_paren", 1, 6, "')'"),
    ("server.namespace =", "missing_value", 1, 19, "missing value"),
    ("server.namespace = shop\n  and status >= 450", "bad_status", 2, 17, "status >= 400"),
    ('path =~ "(?<=a)b"', "unportable_regex", 1, 10, "lookbehind"),
    ('path =~ "a("', "bad_regex", 1, 10, "missing )"),
    ("status contains 5", "type_mismatch", 1, 8, "number"),
    ("server.kind = deployment", "unknown_kind", 1, 15, "'Deployment'"),
    ("error = yes", "bad_bool", 1, 9, "true or false"),
    ("path = a;b", "unexpected_character", 1, 9, "';'"),
    ("a = b)", "unmatched_paren", 1, 6, "'('"),
]


@pytest.mark.parametrize(("text", "code", "line", "column", "words"), POSITIONS)
def test_errors_point_at_the_mistake(
    text: str, code: str, line: int, column: int, words: str
) -> None:
    with pytest.raises(FilterError) as caught:
        compile_filter(text)
    error = caught.value
    assert (error.code, error.line, error.column) == (code, line, column), str(error)
    assert words in error.message
    assert error.context == text.splitlines()[line - 1]
    assert error.caret == " " * (column - 1) + "^"
    assert str(error).endswith(f"{error.context}\n  {error.caret}")


def test_filter_error_is_a_value_error() -> None:
    assert issubclass(FilterError, ValueError)
