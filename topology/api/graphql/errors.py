"""API errors with a machine-readable code in `extensions.code`, and the masking rule.

Every error a client may act on is an `ApiError` (or a validation error, which
graphql-core raises with the document position). Anything else is internal:
`mask` replaces its message so no Cypher, store detail or stack trace leaves
the server; the original is logged.
"""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError

log = logging.getLogger(__name__)

BAD_FILTER = "BAD_FILTER"
BAD_WINDOW = "BAD_WINDOW"
BAD_INPUT = "BAD_INPUT"
NOT_FOUND = "NOT_FOUND"
LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
INTERNAL = "INTERNAL"
MASKED_MESSAGE = "internal error"
_TOO_MANY_TOKENS = "Document contains more than"  # graphql-core's max_tokens parse error


class ApiError(GraphQLError):
    """An error the client can act on: a message for people and a code for programs."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message, extensions={"code": code, **extra})


def limit_error(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": LIMIT_EXCEEDED})


def _code(error: GraphQLError) -> str | None:
    original = error.original_error
    if isinstance(original, ApiError):
        return str(original.extensions.get("code"))
    if error.extensions and "code" in error.extensions:
        return str(error.extensions["code"])
    return None


def mask(error: GraphQLError) -> GraphQLError:
    """The error as a client may see it: coded errors pass, the rest become 'internal error'."""
    code = _code(error)
    original = error.original_error
    if code is not None:
        if isinstance(original, ApiError):
            return GraphQLError(original.message, error.nodes, error.source, error.positions,
                                error.path, extensions=original.extensions)
        return error
    if original is None:
        # Parse and validation errors carry no original error and only speak of the document.
        code = LIMIT_EXCEEDED if _TOO_MANY_TOKENS in error.message else GRAPHQL_VALIDATION_FAILED
        return GraphQLError(error.message, error.nodes, error.source, error.positions,
                            error.path, extensions={"code": code})
    log.error("GraphQL resolver failed at %s", error.path, exc_info=original)
    return GraphQLError(MASKED_MESSAGE, error.nodes, error.source, error.positions,
                        error.path, extensions={"code": INTERNAL})
