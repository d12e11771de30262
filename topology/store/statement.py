"""Cypher statements with one text per dialect.

The two stores share one data model and the same queries; where the dialects
differ (list functions, regex semantics, list indexing from 1 in LadybugDB)
a statement carries both texts. Values always travel as parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Dialect(StrEnum):
    NEO4J = "neo4j"
    LADYBUG = "ladybug"


@dataclass(frozen=True)
class Statement:
    name: str
    neo4j: str
    ladybug: str

    @classmethod
    def same(cls, name: str, text: str) -> Statement:
        """A statement whose text is valid in both dialects."""
        return cls(name, text, text)

    def text(self, dialect: Dialect) -> str:
        return self.neo4j if dialect is Dialect.NEO4J else self.ladybug
