"""Who gets in: bearer tokens from settings, each with scopes and namespaces.

Tokens come from TOPOLOGY_TOKENS (JSON) or TOPOLOGY_TOKENS_FILE (a file with
the same JSON), a mapping from token to its grant:

    {"s3cr3t": {"name": "map-ui", "scopes": ["read"], "namespaces": ["shop"]}}

A token without `namespaces` sees every namespace. Tokens are kept only as
SHA-256 digests, so looking one up takes the same time whatever its prefix.
Without tokens configured every caller is the anonymous principal with all
scopes (the server then binds to loopback unless told otherwise).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from topology.settings import Settings, SettingsError

SCOPES = frozenset({"read", "ingest", "admin"})
UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]  # subset of SCOPES
    namespaces: frozenset[str] | None  # None = every namespace

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


ANONYMOUS = Principal("anonymous", SCOPES, None)
NOBODY = Principal("unauthenticated", frozenset(), frozenset())


class AuthError(Exception):
    """Refused: `code` is UNAUTHENTICATED (HTTP 401) or FORBIDDEN (HTTP 403)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return 401 if self.code == UNAUTHENTICATED else 403


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_tokens(text: str, where: str) -> dict[str, Principal]:
    """Token digest -> Principal from the JSON text; SettingsError names the entry at fault."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{where}: not JSON: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise SettingsError(f"{where}: expected a JSON object of token -> grant")
    table: dict[str, Principal] = {}
    for token, grant in data.items():
        table[_digest(token)] = _principal(token, grant, where)
    return table


def _principal(token: str, grant: Any, where: str) -> Principal:
    if len(token) < 16:
        raise SettingsError(f"{where}: a token must have at least 16 characters")
    if not isinstance(grant, dict):
        raise SettingsError(f"{where}: the grant of a token must be an object")
    name = grant.get("name")
    at = f"{where}: token {name!r}" if isinstance(name, str) else f"{where}: a token"
    if not isinstance(name, str) or not name:
        raise SettingsError(f"{at} needs a non-empty \"name\"")
    unknown = set(grant) - {"name", "scopes", "namespaces"}
    if unknown:
        raise SettingsError(f"{at}: unknown key(s) {sorted(unknown)}")
    scopes = grant.get("scopes")
    if not isinstance(scopes, list) or not scopes or not set(scopes) <= SCOPES:
        raise SettingsError(f"{at}: \"scopes\" must be a non-empty list of {sorted(SCOPES)}")
    namespaces = grant.get("namespaces")
    if namespaces is not None and (
        not isinstance(namespaces, list) or not all(isinstance(n, str) for n in namespaces)
    ):
        raise SettingsError(f"{at}: \"namespaces\" must be a list of strings")
    return Principal(name, frozenset(scopes),
                     None if namespaces is None else frozenset(namespaces))


def token_table(settings: Settings) -> dict[str, Principal]:
    """The configured tokens (empty when none); raises SettingsError when malformed."""
    return _table(settings.tokens, settings.tokens_file)


@cache
def _table(tokens: str | None, tokens_file: str | None) -> dict[str, Principal]:
    if tokens and tokens_file:
        raise SettingsError("set TOPOLOGY_TOKENS or TOPOLOGY_TOKENS_FILE, not both")
    if tokens:
        return parse_tokens(tokens, "TOPOLOGY_TOKENS")
    if tokens_file:
        try:
            text = Path(tokens_file).read_text()
        except OSError as exc:
            raise SettingsError(f"TOPOLOGY_TOKENS_FILE: cannot read it: {exc}") from None
        return parse_tokens(text, f"TOPOLOGY_TOKENS_FILE {tokens_file}")
    return {}


def authenticate(headers: Mapping[str, str], settings: Settings) -> Principal:
    """The principal the request's Authorization header names; raises AuthError."""
    table = token_table(settings)
    if not table:
        return ANONYMOUS
    value = headers.get("authorization")
    if not value:
        raise AuthError(UNAUTHENTICATED, "missing bearer token (Authorization: Bearer ...)")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError(UNAUTHENTICATED, "the Authorization header must be 'Bearer <token>'")
    principal = table.get(_digest(token.strip()))
    if principal is None:
        raise AuthError(UNAUTHENTICATED, "unknown bearer token")
    return principal


def require(principal: Principal, scope: str) -> None:
    """Raise FORBIDDEN unless the principal holds `scope`."""
    if not principal.allows(scope):
        raise AuthError(FORBIDDEN, f"this token lacks the {scope!r} scope")
