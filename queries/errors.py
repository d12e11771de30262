"""Filter errors, and the one table of friendly messages for common mistakes.

`MISTAKES` pairs each message with example bad inputs. Syntax errors are
classified the way lark's `match_examples` does it (the failing parser state
of an example identifies the mistake); errors found while compiling name their
code directly. `tests/queries/test_errors.py` runs every example and checks it
yields its own code, so a message and its examples cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_FILTER = 2000
MAX_DEPTH = 40
MAX_LIST = 100


@dataclass(frozen=True)
class Mistake:
    code: str
    message: str  # str.format template; fields named per code
    examples: tuple[str, ...]
    syntax: bool = False  # classified from the parser state (match_examples)


MISTAKES: tuple[Mistake, ...] = (
    # -- syntax: classified by lark's match_examples over these examples --
    Mistake("missing_value", "missing value after the operator, e.g. server.namespace = shop",
            ("server.namespace =", "status >=", "path contains", "kind = )",
             "path =~ [a]", "kind in [a,"), syntax=True),
    Mistake("missing_term", "'and', 'or' and 'not' need a term, e.g. kind = Deployment or error",
            ("server.kind = Deployment and", "path = x or", "or path = x", "and x",
             "not", "x or )", "(a and)", "a or or b", "not )", "a and or b"), syntax=True),
    Mistake("missing_operator", "a field needs an operator and a value before the list, "
            "e.g. kind in [Deployment, StatefulSet]",
            ("server.kind [a, b]", "[a]", "x = y [a]"), syntax=True),
    Mistake("list_expected", "'in' takes a list in brackets, e.g. kind in [Deployment, Process]",
            ("server.kind in Deployment", "path in", "path in (a, b)", "path in \"a\""),
            syntax=True),
    Mistake("unclosed_list", "unclosed list: add ']', e.g. kind in [a, b]",
            ("path in [a", "path in [a, b", "path in [a b]"), syntax=True),
    Mistake("unclosed_paren", "unclosed parenthesis: add ')' to close this one",
            ("(path = x", "(v1", "not (a = b or c = d", "((a) or b", "(a = b and c",
             "a or (b and (c or d)"),
            syntax=True),
    Mistake("unmatched_paren", "')' without a matching '('",
            ("a = b)", ")", "(a))", "a or b)"), syntax=True),
    Mistake("empty_group", "empty parentheses: put a term inside",
            ("()", "a and ()", "not ()"), syntax=True),
    # -- lexical --
    Mistake("unclosed_quote", "unclosed quote: add the closing {quote}",
            ('path = "/api', "server.service.name = 'stripe", '"v1', 'kind in ["a, b]')),
    Mistake("unexpected_character", "unexpected character {char!r}: quote values that "
            "contain it, e.g. path = \"/a;b\"",
            ("path = /a;b", "kind = `x`", "a # b", "x ~ y", "path = a & b")),
    Mistake("unexpected", "unexpected {token!r} here; expected {expected}", ()),
    # -- meaning: raised by the compiler --
    Mistake("unknown_field", "unknown field {field!r}{hint}",
            ("server.namespce = shop", "namespace = shop", "client.name = a", "foo = bar",
             "server.labels.team = x", "client.label.-a = b", "service.label. = x")),
    Mistake("type_mismatch", "operator {op!r} does not fit the {type} field {field!r}; "
            "use {allowed}",
            ("status contains 5", "path > 3", "server.external =~ yes", "error in [true]",
             "client.external >= 1", "service.name < b")),
    Mistake("bad_number", "{value!r} is not a number for {field!r}: use e.g. 500 or 5xx",
            ("status = abc", "status >= 5.5", "status in [4xx, x]")),
    Mistake("bad_status", "status is counted per class (1xx-5xx), so {field} {op} {value} "
            "cannot be answered exactly: use e.g. status = {klass}xx or status >= {klass}00",
            ("status = 404", "status > 450", "status in [500, 503]", "status < 5xx")),
    Mistake("bad_bool", "{value!r} is not a boolean for {field!r}: use true or false",
            ("service.external = maybe", "error = 1", "client.external != yes")),
    Mistake("unknown_kind", "{value!r} is not a service kind{hint}",
            ("service.kind = deployment", "server.kind in [Deployment, pod]",
             "client.kind != Foo")),
    Mistake("bad_regex", "{detail}",
            ('path =~ "("', '"v1("', 'path =~ "[a-"', 'path =~ "a)"', "x|*")),
    Mistake("unportable_regex", "{detail}; filter patterns use one flavour that means the "
            "same in Neo4j (Java) and LadybugDB (RE2)",
            ('path =~ "(?<=a)b"', 'path =~ "(a)\\\\1"', 'path =~ "a++"', 'path =~ "(?m)^a"',
             'path =~ "(?=a)"', "x{2000}", 'path =~ "\\\\p{L}"', 'path =~ "\\\\Z"')),
    Mistake("bad_label_value", "label values cannot contain line breaks",
            ('client.label.team = "a\\nb"',)),
    Mistake("empty_list", "empty list: put at least one value in the brackets",
            ("server.kind in []", "path in [ ]")),
    Mistake("list_too_long", "a list holds at most {limit} values", (
        "path in [" + ", ".join(f"v{i}" for i in range(MAX_LIST + 1)) + "]",)),
    Mistake("too_long", "the filter is longer than {limit} characters",
            ("path = " + "a" * MAX_FILTER,)),
    Mistake("too_deep", "the filter nests deeper than {limit} levels",
            ("(a or " * (MAX_DEPTH + 1) + "b" + ")" * (MAX_DEPTH + 1),
             "not " * (MAX_DEPTH + 1) + "a")),
    Mistake("pattern_too_long", "{detail}", ("path =~ " + "a" * 300,)),
)
BY_CODE = {mistake.code: mistake for mistake in MISTAKES}
SYNTAX_EXAMPLES = {m.code: list(m.examples) for m in MISTAKES if m.syntax}


class FilterError(ValueError):
    """A filter that cannot be compiled: where (1-based line/column) and why."""

    def __init__(
        self, code: str, text: str, line: int, column: int, **details: object
    ) -> None:
        self.code = code
        self.message = BY_CODE[code].message.format(**details)
        self.line = line
        self.column = column
        lines = text.splitlines() or [""]
        self.context = lines[line - 1] if 0 < line <= len(lines) else ""
        self.caret = " " * (column - 1) + "^"
        super().__init__(
            f"{self.message} (line {line}, column {column})\n  {self.context}\n  {self.caret}"
        )

    @classmethod
    def at_offset(cls, code: str, text: str, offset: int, **details: object) -> FilterError:
        """An error at a 0-based character offset into the filter text."""
        offset = max(0, min(offset, len(text)))
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        return cls(code, text, line, column, **details)
