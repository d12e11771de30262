"""PostgreSQL frontend/backend protocol (v3), from the first bytes of writes and reads.

Unlike HTTP and Redis, a PostgreSQL connection has state the calls need: the
database named once in the startup message, and the statements prepared by name
that later executions only refer to. So each connection gets a `Session`, which
the tracker uses like a protocol module (`NAME`, `parse_request`,
`parse_response`) and pairs FIFO like the others.

What becomes a call (protocol "postgresql"):

- The connection set-up, method `CONNECT`: an SSLRequest/GSSENCRequest (refused
  with `N`, the startup follows) or the startup message, answered when the
  server says AuthenticationOk or sends an ErrorResponse (bad password, unknown
  database). Password/SASL round trips in between are part of it. An accepted
  SSL/GSS request ends the call there and parsing stops (the rest is encrypted).
- A simple Query (`Q`), or an extended-protocol round trip (Parse/Bind/
  Describe/Execute up to Sync, written at once by libpq): method = the SQL
  command word (SELECT, INSERT, ...; a word outside the catalogue is `OTHER`,
  a named statement whose Parse was never seen is `EXECUTE`), path = the
  database. A Parse without Bind/Execute (preparing) is no call.
- The answer is the first read after the request; an ErrorResponse (`E`) in it
  marks the call failed. SQLSTATE is not reported: the call's status is an
  integer (HTTP-like) and a SQLSTATE is five characters.

Never shipped: statement text, parameters, user names. Limits: only the first
statement of a pipeline written in one syscall is seen (as for Redis); an
error raised after rows were already sent, beyond the captured head, is not
seen. A connection whose start was missed is recognised by a typed message
that names a known command on server port 5432 (path unknown then).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from collectors.ebpf.protocols.http1 import Parse

NAME = "postgresql"
PORT = 5432
PROTOCOL_3 = 196608
SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
MAX_STARTUP = 10000
MAX_STATEMENTS = 128  # named prepared statements remembered per connection
COMMANDS = frozenset({
    "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "WITH", "VALUES", "TABLE", "COPY", "CALL",
    "DO", "EXPLAIN", "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT",
    "RELEASE", "PREPARE", "EXECUTE", "DEALLOCATE", "DECLARE", "FETCH", "MOVE", "CLOSE", "SET",
    "RESET", "SHOW", "DISCARD", "LISTEN", "NOTIFY", "UNLISTEN", "LOCK", "CREATE", "ALTER",
    "DROP", "TRUNCATE", "GRANT", "REVOKE", "COMMENT", "SECURITY", "REASSIGN", "IMPORT",
    "VACUUM", "ANALYZE", "CLUSTER", "REINDEX", "REFRESH", "CHECKPOINT", "LOAD",
})
_BACKEND_TYPES = frozenset(b"RSKZTDCEN123nstIAGHWcdVv")
_LEADING = re.compile(rb"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.S)
_WORD = re.compile(rb"[A-Za-z]+")
_INT = struct.Struct("!i")

# session phases
_START, _TLS_ASKED, _TLS_REFUSED, _AUTH, _READY, _OFF = range(6)


@dataclass(slots=True)
class Statement:
    """A request as the tracker reads it (method, path, host). Mutable: a CONNECT that
    starts with an SSLRequest learns its database from the startup message after it."""

    method: str
    path: str
    host: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    status: int | None = None
    error: bool = False
    interim: bool = False  # SSL refused: the startup and its answer follow
    upgrade: bool = False  # SSL/GSS accepted: what follows is encrypted


def session_for(data: bytes, server_port: int) -> Session | None:
    """A session for a connection whose first write may be PostgreSQL, else None (cheap)."""
    if not data:
        return None
    first = data[0]
    if first == 0 or (server_port == PORT and first in b"QPB"):
        return Session(server_port)
    return None


def command_word(sql: bytes) -> str | None:
    """The statement's first keyword, upper-case; None when it is cut off or absent."""
    lead = _LEADING.match(sql)
    rest = sql[lead.end():] if lead else sql
    word = _WORD.match(rest)
    if word is None or word.end() == len(rest):  # nothing, or possibly cut mid-word
        return None
    name = word.group().decode("ascii").upper()
    return name if name in COMMANDS else "OTHER"


def messages(data: bytes) -> list[tuple[int, bytes, bool]]:
    """Typed messages in view: (type, body as captured, whole). Stops at the first
    message that runs past the data (returned, not whole) or at an implausible length."""
    found = []
    at, end = 0, len(data)
    while at + 5 <= end:
        (length,) = _INT.unpack_from(data, at + 1)
        if length < 4:
            break
        stop = at + 1 + length
        found.append((data[at], data[at + 5:min(stop, end)], stop <= end))
        if stop > end:
            break
        at = stop
    return found


def _cstring(body: bytes, at: int = 0) -> tuple[bytes, int] | None:
    nul = body.find(b"\0", at)
    return None if nul < 0 else (body[at:nul], nul + 1)


class Session:
    """One connection's protocol state; see the module docstring for what it reports."""

    NAME = NAME
    __slots__ = ("awaiting", "connect", "database", "phase", "server_port", "statements")

    def __init__(self, server_port: int = 0) -> None:
        self.server_port = server_port
        self.phase = _START
        self.database: str | None = None
        self.connect: Statement | None = None
        self.statements: dict[bytes, str] = {}
        self.awaiting = 0  # requests whose first response read has not come yet

    # requests (frontend messages)

    def parse_request(self, data: bytes) -> tuple[Parse, Statement | None]:
        phase = self.phase
        if phase == _READY:
            return self._query(data)
        if phase == _START:
            if data[:1] == b"\0":
                return self._startup(data, first=True)
            if self.server_port == PORT:
                self.phase = _READY  # joined mid-connection: database unknown
                state, request = self._query(data)
                if state is not Parse.COMPLETE or request is None or request.method == "OTHER":
                    self.phase, self.awaiting = _START, 0
                    return Parse.INVALID, None
                return state, request
        if phase == _TLS_REFUSED:
            return self._startup(data, first=False)
        return Parse.INVALID, None  # password/SASL messages, or data after TLS

    def _startup(self, data: bytes, first: bool) -> tuple[Parse, Statement | None]:
        if len(data) < 8:
            return Parse.PARTIAL, None
        length, code = struct.unpack_from("!ii", data)
        if length == 8 and code in (SSL_REQUEST, GSSENC_REQUEST):
            self.phase = _TLS_ASKED
            self.awaiting = 1
            if not first:  # GSS encryption refused, SSL asked next: the same CONNECT
                return Parse.INVALID, None
            self.connect = Statement("CONNECT", "")
            return Parse.COMPLETE, self.connect
        if code != PROTOCOL_3 or not 8 < length <= MAX_STARTUP:
            return Parse.INVALID, None  # CancelRequest, protocol 2, or not PostgreSQL
        params: dict[bytes, bytes] = {}
        at = 8
        while (key := _cstring(data, at)) is not None and key[0]:
            value = _cstring(data, key[1])
            if value is None:
                break
            params[key[0]] = value[0]
            at = value[1]
        database = params.get(b"database") or params.get(b"user")
        if database is None:
            if len(data) < length:
                return Parse.PARTIAL, None
            database = b""
        self.database = database.decode("utf-8", "replace")
        self.phase = _AUTH
        self.awaiting = 1
        if first:
            self.connect = Statement("CONNECT", self.database)
            return Parse.COMPLETE, self.connect
        if self.connect is not None:
            self.connect.path = self.database
        return Parse.INVALID, None  # the CONNECT call is already pending

    def _query(self, data: bytes) -> tuple[Parse, Statement | None]:
        if len(data) < 5:
            return Parse.PARTIAL, None
        method = None
        executes = False
        for kind, body, whole in messages(data):
            if kind == 0x51:  # Q: simple query
                word = command_word(body)
                if word is None:
                    return (Parse.INVALID, None) if whole else (Parse.PARTIAL, None)
                method, executes = word, True
                break
            if kind == 0x50:  # P: Parse (name, query, ...)
                name = _cstring(body)
                word = command_word(body[name[1]:]) if name else None
                if word is None:
                    return (Parse.INVALID, None) if whole else (Parse.PARTIAL, None)
                self._remember(name[0] if name else b"", word)
                method = method or word
                if not whole:  # the Bind/Execute that follow are out of view
                    executes = True
                    break
            elif kind == 0x42:  # B: Bind (portal, statement, ...)
                portal = _cstring(body)
                statement = _cstring(body, portal[1]) if portal else None
                if statement is not None:
                    method = method or self.statements.get(statement[0], "EXECUTE")
                executes = True
            elif kind == 0x45:  # E: Execute
                executes = True
            elif kind not in b"DSHC":  # Describe, Sync, Flush, Close are neutral
                break
            if not whole:
                break
        if not executes or method is None:
            return Parse.INVALID, None  # Terminate, Sync alone, prepare only, not PostgreSQL
        self.awaiting += 1
        return Parse.COMPLETE, Statement(method, self.database or "")

    def _remember(self, name: bytes, word: str) -> None:
        statements = self.statements
        statements.pop(name, None)
        statements[name] = word
        if len(statements) > MAX_STATEMENTS:
            del statements[next(iter(statements))]

    # responses (backend messages)

    def parse_response(self, data: bytes) -> tuple[Parse, Reply | None]:
        if not data or self.awaiting <= 0:
            return Parse.INVALID, None  # the rest of an answer already paired, or async
        phase = self.phase
        if phase == _TLS_ASKED:
            answer = data[:1]
            if answer == b"N":
                self.phase = _TLS_REFUSED
                return Parse.COMPLETE, Reply(interim=True)
            if answer in (b"S", b"G"):
                self.phase, self.awaiting = _OFF, 0
                return Parse.COMPLETE, Reply(upgrade=True)
        if data[0] not in _BACKEND_TYPES:
            return Parse.INVALID, None
        seen = messages(data)
        error = any(kind == 0x45 for kind, _, _ in seen)
        if phase in (_AUTH, _TLS_ASKED):
            authenticated = any(kind == 0x52 and body[:4] == b"\0\0\0\0" for kind, body, _ in seen)
            if not (error or authenticated):
                return Parse.INVALID, None  # an authentication challenge: the exchange goes on
            self.phase = _READY
        self.awaiting -= 1
        return Parse.COMPLETE, Reply(error=error)
