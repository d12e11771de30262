"""The regex flavour: what passes, what is refused, and search semantics on LadybugDB."""

from __future__ import annotations

import re

import pytest

from queries.regex import MAX_PATTERN, RegexError, check, searching
from topology.store.base import GraphStore
from topology.store.statement import Statement

PORTABLE = [
    "v1.traces", "^/api/v[0-9]+/", "orders$", "a|b", "(a|b)+c", "(?:ab)*", "a{2}", "a{2,}",
    "a{2,5}?", r"\d+", r"\w\s\S\W\D", r"\.", r"\/", r"[\-\]]", r"\x2f", "(?i)ORDERS",
    "(?i:a)b", "[^/]+", "a+?", r"\bword\b",
]
REFUSED = [
    ("(?<=a)b", "lookbehind"), ("(?<!a)b", "lookbehind"), ("(?=a)", "lookahead"),
    ("(?!a)", "lookahead"), ("(?P<n>a)", "named groups"), ("(?<n>a)", "named groups"),
    ("(?>a)", "atomic"), ("a++", "possessive"), ("a*+", "possessive"), ("a{2}+", "possessive"),
    (r"(a)\1", "backreferences"), ("(?m)^a", "inline flags"), ("a(?i)b", "inline flags"),
    ("(?s).", "inline flags"), ("(?#c)", "comments"), (r"\p{L}", r"\p"), (r"\Z", r"\Z"),
    (r"\A", r"\A"), (r"\z", r"\z"), (r"\Qa\E", r"\Q"), (r"\v", r"\v"), (r"\u0041", r"\u"),
    ("[a[b]]", "nested"), ("[a&&b]", "intersection"), ("[]a]", r"\]"), ("a{", r"\{"),
    ("a{,2}", r"\{"), ("a{1001}", "above 1000"), ("x" * (MAX_PATTERN + 1), "longer than"),
    ("[ab", "unclosed"), ("\\", "lone backslash"), (r"[\b]", r"\b"), (r"\x4", "hex"),
]


@pytest.mark.parametrize("pattern", PORTABLE)
def test_portable_patterns_pass(pattern: str) -> None:
    check(pattern)
    assert searching(pattern).startswith("(?s).*(?")


@pytest.mark.parametrize(("pattern", "reason"), REFUSED)
def test_unportable_patterns_are_refused(pattern: str, reason: str) -> None:
    with pytest.raises(RegexError) as caught:
        searching(pattern)
    assert reason in caught.value.message


# (pattern, subject, found)
SEARCHES = [
    ("v1.traces", "/api/v1/traces/search", True),
    ("v1.traces", "/api/v2/traces", False),
    ("^/api", "/api/x", True),
    ("^api", "/api/x", False),
    ("search$", "/api/v1/traces/search", True),
    ("traces$", "/api/v1/traces/search", False),
    ("(?i)TRACES", "/api/v1/traces", True),
    ("TRACES", "/api/v1/traces", False),
    ("a|zz", "xxa", True),
    ("b", "a\nb", True),
    (r"\d{3}", "/orders/123", True),
    ("[^/]+/x", "/x", False),
]


@pytest.mark.parametrize(("pattern", "subject", "found"), SEARCHES)
def test_search_semantics_match_python_search(pattern: str, subject: str, found: bool) -> None:
    assert (re.search(pattern, subject) is not None) is found
    assert (re.fullmatch(searching(pattern), subject) is not None) is found


def test_search_semantics_on_ladybug(embedded_store: GraphStore) -> None:
    statement = Statement.same("regex_probe", "RETURN $subject =~ $pattern AS found")
    for pattern, subject, found in SEARCHES:
        rows = embedded_store.read(statement, {"subject": subject, "pattern": searching(pattern)})
        assert rows == [{"found": found}], (pattern, subject)
