"""Filter values: unquoting, booleans and status classes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lark import Token

from queries.errors import FilterError

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\"}
_CLASS = re.compile(r"([1-5])xx", re.IGNORECASE)


def unquote(body: str) -> str:
    r"""Resolve \" \' \\ \n \t \r; any other backslash stays (regexes keep \d, \.)."""
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class Value:
    token: Token
    text: str
    quoted: bool

    @classmethod
    def of(cls, token: Token, source: str) -> Value:
        raw = str(token)
        if token.type == "STRING":
            return cls(token, unquote(raw[1:-1]), True)
        return cls(token, raw, False)

    def upper(self) -> Value:
        return Value(self.token, self.text.upper(), self.quoted)

    def offset(self, inside: int) -> int:
        """Offset in the filter of character `inside` of the value (exact without escapes)."""
        start = (self.token.start_pos or 0) + int(self.quoted)
        end = (self.token.end_pos or start) - int(self.quoted)
        return min(start + inside, max(start, end))


def boolean(value: Value, field: str, text: str) -> bool:
    lowered = value.text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise FilterError.at_offset(
        "bad_bool", text, value.token.start_pos or 0, value=value.text, field=field
    )


def status_classes(op: str, value: Value, field: str, text: str) -> set[int]:
    """Status classes (1..5) whose every status satisfies `status op value`.

    Buckets count calls per class only, so a comparison that splits a class
    (status = 404) cannot be answered and is refused with a hint.
    """
    where = value.token.start_pos or 0
    klass = _CLASS.fullmatch(value.text)
    if klass:
        number = int(klass.group(1))
        if op in ("=", "in"):
            return {number}
        if op == "!=":
            return {1, 2, 3, 4, 5} - {number}
        raise FilterError.at_offset("bad_status", text, where, field=field, op=op,
                                    value=value.text, klass=number)
    if not re.fullmatch(r"-?\d{1,6}", value.text):
        raise FilterError.at_offset("bad_number", text, where, value=value.text, field=field)
    number = int(value.text)
    compare = {
        "=": lambda s: s == number, "in": lambda s: s == number, "!=": lambda s: s != number,
        "<": lambda s: s < number, "<=": lambda s: s <= number,
        ">": lambda s: s > number, ">=": lambda s: s >= number,
    }[op]
    chosen: set[int] = set()
    for klass_number in range(1, 6):
        hits = [compare(s) for s in range(klass_number * 100, klass_number * 100 + 100)]
        if all(hits):
            chosen.add(klass_number)
        elif any(hits):
            raise FilterError.at_offset(
                "bad_status", text, where, field=field, op=op, value=value.text,
                klass=klass_number,
            )
    return chosen
