"""Path templates: ids folded into placeholders so paths stay a small set.

A path is cut at `?` or `#` (query strings never reach the graph), split into
segments, and every segment that matches a rule becomes that rule's
placeholder: `/orders/42/items/9f1c...` -> `/orders/{id}/items/{hex}`. Rules
are tried in order; the first match wins. Folding is memoised because the same
raw paths repeat within and across batches.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

OVERFLOW_TEMPLATE = "{overflow}"
MAX_PATH_LENGTH = 512  # templates longer than this are cut and marked
_MEMO_LIMIT = 65536


@dataclass(frozen=True)
class FoldRule:
    """Segments that fully match `pattern` become `placeholder`."""

    pattern: str
    placeholder: str

    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.pattern)


DEFAULT_RULES: tuple[FoldRule, ...] = (
    FoldRule(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
             "{uuid}"),
    FoldRule(r"[+-]?\d+(?:\.\d+)?", "{id}"),
    FoldRule(r"(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{16,}", "{hex}"),
    # Opaque tokens: long, mixed letters and digits (base64url ids, ULIDs, slugs with ids).
    FoldRule(r"(?=[A-Za-z0-9_\-=]*\d)(?=[A-Za-z0-9_\-=]*[A-Za-z])[A-Za-z0-9_\-=]{20,}", "{token}"),
    # Words ending in a number (user123, order-77): an id glued to a prefix.
    FoldRule(r"[A-Za-z]+[-_]?\d{3,}", "{id}"),
)


class PathFolder:
    """Turns raw request paths into templates with the given rules.

    All rules are compiled into one regex of named alternatives, and each
    segment is matched whole against it (the first rule that matches the
    whole segment wins). Rules must not match `/`. Whole paths are memoised
    (bounded) because many repeat; so are the segments no rule matches
    (`api`, `v1`, `orders`), which repeat even when the ids between them do
    not, so a path with a fresh id costs one regex match for that id alone.
    """

    def __init__(self, rules: Sequence[FoldRule] = DEFAULT_RULES) -> None:
        self.rules = tuple(rules)
        for rule in self.rules:
            rule.compiled()  # a bad pattern fails here, naming itself
        alternatives = "|".join(f"(?P<r{i}>{rule.pattern})" for i, rule in enumerate(self.rules))
        self._segment = re.compile(f"(?:{alternatives})").fullmatch
        self._placeholders = {f"r{i}": rule.placeholder for i, rule in enumerate(self.rules)}
        self.memo: dict[str, str] = {}  # raw path -> template (read on the hot path)
        self._literals: set[str] = set()  # segments no rule matches
        self._heads: dict[str, str] = {}  # path before a last segment of digits -> template
        # Plain numbers, the commonest ids, skip the regex when the rules begin as
        # the defaults do (no earlier rule can match digits alone: the UUID rule
        # needs dashes). `str.isdecimal` is exactly the regex's `\d` (Unicode Nd).
        self._number = (DEFAULT_RULES[1].placeholder
                        if self.rules[:2] == DEFAULT_RULES[:2] else None)

    def fold(self, path: str) -> str:
        folded = self.memo.get(path)
        if folded is not None:
            return folded
        number = self._number
        if number is not None:
            # A fresh number at the end of a path seen before (`/orders/42`): the
            # rest folds once and the number needs no regex, nor a memo entry
            # that the next id would never read.
            head, slash, tail = path.rpartition("/")
            if slash and tail.isdecimal() and "?" not in head and "#" not in head:
                folded = self._heads.get(head)
                if folded is None:
                    if len(self._heads) >= _MEMO_LIMIT:
                        self._heads.clear()
                    start = self._fold(head + "/")
                    # "": too long with the number (the whole path is cut instead)
                    folded = self._heads[head] = (
                        start + number if len(start) + len(number) <= MAX_PATH_LENGTH else "")
                if folded:
                    return folded
        folded = self._fold(path)
        if len(self.memo) >= _MEMO_LIMIT:
            self.memo.clear()
        self.memo[path] = folded
        return folded

    def _fold(self, path: str) -> str:
        if "?" in path:
            path = path[:path.index("?")]
        if "#" in path:
            path = path[:path.index("#")]
        segments = path.split("/")
        literals, match, placeholders = self._literals, self._segment, self._placeholders
        number = self._number
        for i, segment in enumerate(segments):
            if not segment or segment in literals:
                continue
            if number is not None and segment.isdecimal():
                segments[i] = number
                continue
            found = match(segment)
            if found is not None:
                segments[i] = placeholders[found.lastgroup or ""]
            elif len(literals) < _MEMO_LIMIT:
                literals.add(segment)
        template = "/".join(segments)
        if len(template) > MAX_PATH_LENGTH:
            template = template[:MAX_PATH_LENGTH] + "{cut}"
        return template
