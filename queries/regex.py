"""The one regular-expression flavour of the filter language, and search semantics.

Neo4j matches `=~` with Java's regex engine against the whole string; the
embedded LadybugDB matches with RE2, also against the whole string, and
silently answers false for a pattern RE2 cannot compile. So a filter pattern
must mean the same thing in Java, RE2 and Python (which validates it here):

* allowed: literals, `.`, classes `[...]` / `[^...]` with ranges, `\\d \\D \\s
  \\S \\w \\W \\b \\B \\t \\n \\r \\f`, `\\xhh`, escaped punctuation, groups
  `(...)` and `(?:...)`, alternation, `* + ? {n} {n,} {n,m}` (counts up to
  1000) and their lazy forms, anchors `^ $`, a leading `(?i)` or scoped `(?i:...)`;
* rejected, because the engines disagree or one lacks it: lookahead and
  lookbehind, backreferences, named groups, atomic groups, possessive
  quantifiers, other inline flags, `\\A \\Z \\z \\G`, Unicode classes `\\p{..}`,
  `\\Q..\\E`, octal escapes, nested classes and class intersection.

Search semantics: `path =~ "v1.traces"` is true when the pattern matches
anywhere in the path. `searching(p)` builds the whole-string pattern
`(?s).*(?:p).*` that both databases then full-match; it is built here, in the
parameter value, never in query text.
"""

from __future__ import annotations

import re
import warnings

MAX_PATTERN = 256
MAX_REPEAT = 1000

_ALLOWED_ESCAPES = set("dDsSwWbBtnrf")
_PUNCTUATION = set(r"""!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~""")
_REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")


class RegexError(ValueError):
    """A pattern outside the flavour; `offset` is where in the pattern."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def _group_opening(pattern: str, i: int) -> None:
    """Check a `(?` construct at i; only `(?:`, `(?i:` and a leading `(?i)` pass."""
    rest = pattern[i + 2:]
    if rest.startswith(":") or rest.startswith("i:") or (i == 0 and rest.startswith("i)")):
        return
    if rest.startswith(("<=", "<!")):
        what = "lookbehind"
    elif rest.startswith(("=", "!")):
        what = "lookahead"
    elif rest.startswith(("P<", "<", "'", "P=")):
        what = "named groups"
    elif rest.startswith(">"):
        what = "atomic groups"
    elif rest.startswith("#"):
        what = "comments"
    else:
        what = "inline flags other than a leading (?i)"
    raise RegexError(f"{what} are not supported in filter patterns", i)


def _escape(pattern: str, i: int, in_class: bool) -> int:
    """Check the escape at i; return the index after it."""
    if i + 1 >= len(pattern):
        raise RegexError("pattern ends with a lone backslash", i)
    char = pattern[i + 1]
    if char in _PUNCTUATION:
        return i + 2
    if char == "x":
        if re.fullmatch(r"[0-9A-Fa-f]{2}", pattern[i + 2:i + 4]):
            return i + 4
        raise RegexError(r"\x takes exactly two hex digits, e.g. \x2f", i)
    if char in _ALLOWED_ESCAPES and not (in_class and char in "bB"):
        return i + 2
    if char.isdigit():
        raise RegexError(f"backreferences and octal escapes (\\{char}) are not supported", i)
    raise RegexError(f"the escape \\{char} is not supported in filter patterns", i)


def check(pattern: str) -> None:
    """Raise RegexError unless `pattern` is in the portable flavour."""
    if len(pattern) > MAX_PATTERN:
        raise RegexError(f"pattern is longer than {MAX_PATTERN} characters", MAX_PATTERN)
    i, in_class, class_start = 0, False, 0
    after_quantifier = False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i = _escape(pattern, i, in_class)
            after_quantifier = False
            continue
        if in_class:
            if char == "]" and i > class_start:
                in_class = False
            elif char == "[" or pattern.startswith("&&", i):
                raise RegexError("nested classes and class intersection are not supported", i)
            i += 1
            continue
        if char == "[":
            in_class = True
            class_start = i + 1 + (pattern[i + 1:i + 2] == "^")
            if pattern[class_start:class_start + 1] == "]":
                raise RegexError("write a literal ] in a class as \\]", class_start)
        elif char == "(" and pattern.startswith("(?", i):
            _group_opening(pattern, i)
        elif char == "+" and after_quantifier:
            raise RegexError("possessive quantifiers are not supported", i)
        elif char == "{":
            repeat = _REPEAT.match(pattern, i)
            if repeat and max(int(n or 0) for n in repeat.groups()) > MAX_REPEAT:
                raise RegexError(f"repetition counts above {MAX_REPEAT} are not supported", i)
            if not repeat:
                raise RegexError("write a literal { as \\{", i)
            if repeat:
                i = repeat.end()
                after_quantifier = True
                continue
        after_quantifier = char in "*+?" and not after_quantifier
        i += 1
    if in_class:
        raise RegexError("unclosed character class [", class_start - 1)


def searching(pattern: str) -> str:
    """The validated whole-string pattern that finds `pattern` anywhere."""
    check(pattern)
    body, open_group = pattern, "(?:"
    if pattern.startswith("(?i)"):
        body, open_group = pattern[4:], "(?i:"
    wrapped = f"(?s).*{open_group}{body}).*"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            re.compile(wrapped)
        except (re.error, FutureWarning, DeprecationWarning) as exc:
            prefix, shift = len(wrapped) - len(body) - 3, len(pattern) - len(body)
            where = (getattr(exc, "pos", None) or prefix) - prefix + shift
            message = str(exc).split(" at position")[0]
            raise RegexError(
                f"bad regular expression: {message}", max(0, min(where, len(pattern)))
            ) from None
    return wrapped
