"""A small synchronous Redis client for the build helper, on hiredis's protocol code.

Why not redis-py, as everywhere else: importing redis-py (8.x) imports
asyncio, ssl, email and its observability modules, 18 MB of a build
helper's 47 MB RSS (build_helper.py), for the few commands a helper sends:
GET, HVALS, HGETALL, INCR and EVAL, alone or pipelined. hiredis, redis-py's
own optional parser and already a dependency, packs the commands and parses
the replies; this module connects, sends, and shapes the replies as redis-py
does. It offers the part of redis-py's interface that the lease and DNS
stores and their snapshot cache call (`get`, `incr`, `pipeline`,
`register_script`), so they run on either client.

It reads `redis://` and `unix://` URLs with user, password and database,
as redis-py does, and nothing more: `parse_url` refuses TLS (`rediss://`)
and redis-py's URL options, and a helper given such a URL uses redis-py
(build_helper.py). A connection that breaks is made again and the commands
sent once more, as redis-py's default retry does: every command a helper
sends may run twice (reads, idempotent scripts, a version counter that only
has to change).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

CONNECT_TIMEOUT = 5.0  # seconds
# A reply slower than this is taken as a broken connection (GET of a stored
# batch of a few MB takes milliseconds).
REPLY_TIMEOUT = 30.0  # seconds
DEFAULT_PORT = 6379
_SCHEMES = ("redis", "unix")
_READ_SIZE = 1 << 20


class RedisError(Exception):
    """A Redis command failed: the connection, or an error reply."""


class ConnectionFailed(RedisError):
    """Redis could not be reached, or the connection broke."""


class ReplyError(RedisError):
    """Redis answered a command with an error."""


@dataclass(frozen=True)
class Address:
    """Where Redis is and how to log in, from a URL (`parse_url`)."""

    host: str = "localhost"
    port: int = DEFAULT_PORT
    path: str | None = None  # a unix socket
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse_url(url: str) -> Address:
    """The address in a `redis://` or `unix://` URL; ValueError says what is wrong
    or unsupported."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"Redis URL {url!r}: scheme {parts.scheme!r} is not one of "
                         f"{', '.join(s + '://' for s in _SCHEMES)}")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"db"})
    if unknown:
        raise ValueError(f"Redis URL {url!r}: option {unknown[0]!r} is not supported"
                         " (only 'db')")
    db_text = query["db"][-1] if "db" in query else ""
    if parts.scheme != "unix" and parts.path not in ("", "/"):
        if db_text:
            raise ValueError(f"Redis URL {url!r}: the database is given twice")
        db_text = parts.path.lstrip("/")
    try:
        db = int(db_text or 0)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"Redis URL {url!r}: {exc}") from None
    if db < 0:
        raise ValueError(f"Redis URL {url!r}: database {db} is negative")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"Redis URL {url!r}: no socket path")
        return Address(path=unquote(parts.path), db=db, username=username, password=password)
    return Address(host=parts.hostname or "localhost", port=port or DEFAULT_PORT, db=db,
                   username=username, password=password)


def _connect(address: Address, timeout: float) -> socket.socket:
    try:
        if address.path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(address.path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((address.host, address.port), timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:
        where = address.path or f"{address.host}:{address.port}"
        raise ConnectionFailed(f"cannot connect to Redis at {where}: {exc}") from None
    sock.settimeout(REPLY_TIMEOUT)
    return sock


class Client:
    """One connection, made on first use and again after it breaks. Not thread-safe
    (a build helper runs one job at a time)."""

    def __init__(self, address: Address, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.address = address
        self._connect_timeout = connect_timeout
        self._sock: socket.socket | None = None
        self._reader = hiredis.Reader()

    @classmethod
    def from_url(cls, url: str) -> Client:
        return cls(parse_url(url))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def run(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send the commands in one write, read every reply; the first error reply is
        raised once all are read. A broken connection is made again and the commands
        sent once more."""
        try:
            replies = self._exchange(commands)
        except ConnectionFailed:
            self.close()
            replies = self._exchange(commands)
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise ReplyError(str(reply))
        return replies

    def _exchange(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        if self._sock is None:
            self._open()
        try:
            self._send(commands)
            return [self._reply() for _ in commands]
        except (OSError, hiredis.ProtocolError) as exc:
            self.close()
            raise ConnectionFailed(f"Redis connection broken: {exc!r}") from None

    def _open(self) -> None:
        """Connect, then log in and select the database as the URL says."""
        self._sock, self._reader = _connect(self.address, self._connect_timeout), hiredis.Reader()
        setup: list[tuple[Any, ...]] = []
        if self.address.password is not None:
            setup.append(("AUTH", self.address.password) if self.address.username is None
                         else ("AUTH", self.address.username, self.address.password))
        if self.address.db:
            setup.append(("SELECT", self.address.db))
        try:
            self._send(setup)
            for command in setup:
                reply = self._reply()
                if isinstance(reply, hiredis.ReplyError):
                    raise ReplyError(f"Redis refused {command[0]}: {reply}")
        except BaseException as exc:
            self.close()
            if isinstance(exc, OSError | hiredis.ProtocolError):
                raise ConnectionFailed(f"Redis connection broken while logging in: {exc!r}"
                                       ) from None
            raise

    def _send(self, commands: list[tuple[Any, ...]]) -> None:
        if commands:
            assert self._sock is not None
            self._sock.sendall(b"".join(hiredis.pack_command(c) for c in commands))

    def _reply(self) -> Any:
        assert self._sock is not None
        while True:
            reply = self._reader.gets()
            if reply is not False:
                return reply
            data = self._sock.recv(_READ_SIZE)
            if not data:
                raise ConnectionResetError("Redis closed the connection")
            self._reader.feed(data)

    def get(self, key: str) -> bytes | None:
        reply: bytes | None = self.run([("GET", key)])[0]
        return reply

    def incr(self, key: str) -> int:
        return int(self.run([("INCR", key)])[0])

    def pipeline(self, transaction: bool = False) -> Pipeline:
        if transaction:
            raise ValueError("the build helper's Redis client has no MULTI/EXEC pipelines")
        return Pipeline(self)

    def register_script(self, text: str) -> Script:
        return Script(self, text)


def _as_dict(reply: list[Any]) -> dict[Any, Any]:
    return dict(zip(reply[::2], reply[1::2], strict=True))


class Pipeline:
    """Commands queued, then sent together by `execute` (no MULTI: not a transaction)."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._commands: list[tuple[Any, ...]] = []
        self._shapes: list[Callable[[Any], Any] | None] = []

    def queue(self, command: tuple[Any, ...],
              shape: Callable[[Any], Any] | None = None) -> Pipeline:
        self._commands.append(command)
        self._shapes.append(shape)
        return self

    def get(self, key: str) -> Pipeline:
        return self.queue(("GET", key))

    def incr(self, key: str) -> Pipeline:
        return self.queue(("INCR", key))

    def hvals(self, key: str) -> Pipeline:
        return self.queue(("HVALS", key))

    def hgetall(self, key: str) -> Pipeline:
        return self.queue(("HGETALL", key), _as_dict)

    def execute(self) -> list[Any]:
        commands, shapes = self._commands, self._shapes
        self._commands, self._shapes = [], []
        if not commands:
            return []
        replies = self._client.run(commands)
        return [reply if shape is None else shape(reply)
                for reply, shape in zip(replies, shapes, strict=True)]


class Script:
    """A Lua script, sent whole with EVAL: Redis caches it by digest, and a script
    sent whole needs no NOSCRIPT recovery (the few hundred bytes cost nothing here)."""

    def __init__(self, client: Client, text: str) -> None:
        self._client = client
        self.text = text

    def __call__(self, keys: list[Any] | tuple[Any, ...] = (),
                 args: list[Any] | tuple[Any, ...] = (), client: Pipeline | None = None) -> Any:
        command = ("EVAL", self.text, len(keys), *keys, *args)
        if client is not None:
            client.queue(command)
            return client
        return self._client.run([command])[0]
