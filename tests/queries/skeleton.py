"""Check that compiled Cypher holds only catalogue words, never filter text."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\s*(\$?[A-Za-z_][A-Za-z0-9_]*|\d+|=~|<>|<=|>=|[()\[\].,=<>+])")
WORDS = frozenset({
    # variables
    "c", "s", "k", "l",
    # Cypher words the compiler writes
    "any", "IN", "WHERE", "STARTS", "WITH", "ENDS", "CONTAINS", "AND", "OR", "NOT",
    "true", "false", "size", "substring", "AS",
    # properties, from queries/catalogue.py
    "namespace", "name", "kind", "cluster", "labels", "path", "method", "protocol",
    "status", "errors", "requests",
    # LadybugDB's status class columns (docs/storage.md)
    "s0", "s1", "s2", "s3", "s4", "s5",
})
PARAM = re.compile(r"\$?p\d+")


def foreign_tokens(text: str) -> list[str]:
    """Tokens of a compiled predicate that are not compiler vocabulary."""
    foreign: list[str] = []
    text = text.strip()
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            return [*foreign, text[pos:]]
        token = match.group(1)
        pos = match.end()
        if token in WORDS or PARAM.fullmatch(token) or (token.isdigit() and int(token) <= 6):
            continue
        if not token[0].isalnum() and token[0] not in "$_":
            continue
        foreign.append(token)
    return foreign
