"""HTTP/1.x message heads (NAME "http"), parsed from the first bytes of a read or write.

Only what a service map needs: the request line and Host of a request, the
status of a response. A head is COMPLETE when its first line ends in the
captured bytes, PARTIAL when the bytes so far could still grow into one (a
request split across writes), INVALID when they cannot (binary data on port
80, `GET *`, a malformed line). Nothing INVALID ever becomes a call.
"""

from __future__ import annotations

import enum
import re
from typing import NamedTuple
from urllib.parse import urlsplit

NAME = "http"
METHODS = frozenset(
    b"GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH".split()
)
_LONGEST_METHOD = max(len(m) for m in METHODS)
_VERSIONS = (b"HTTP/1.0", b"HTTP/1.1")
MAX_TARGET = 4096


class Parse(enum.Enum):
    COMPLETE = "complete"
    PARTIAL = "partial"
    INVALID = "invalid"


# Named tuples, not frozen dataclasses: built once or twice per request on the
# agent's hot path, where a frozen dataclass's __init__ costs several times more.
class Request(NamedTuple):
    method: str
    path: str
    host: str | None


class Response(NamedTuple):
    status: int | None
    error: bool = False

    @property
    def interim(self) -> bool:
        """1xx other than 101: the final response is still to come."""
        return self.status is not None and self.status < 200 and self.status != 101

    @property
    def upgrade(self) -> bool:
        """101 Switching Protocols: what follows is not this protocol."""
        return self.status == 101


_VISIBLE = re.compile(rb"[\x21-\x7e]+")


def _visible(token: bytes) -> bool:
    return _VISIBLE.fullmatch(token) is not None


def could_start_request(data: bytes) -> bool:
    """True when data is a prefix of some request line (so more bytes may follow)."""
    method, sep, rest = data.partition(b" ")
    if not sep:
        return any(m.startswith(method) for m in METHODS) and len(method) <= _LONGEST_METHOD
    if method not in METHODS:
        return False
    target, sep, version = rest.partition(b" ")
    if not sep:
        return not target or _visible(target)
    return _visible(target) and any(v.startswith(version) for v in _VERSIONS)


def could_start_response(data: bytes) -> bool:
    head = data[:12]
    if len(head) <= 8:
        return any(v.startswith(head) for v in _VERSIONS)
    return head[:8] in _VERSIONS and head[8:9] == b" " and (not head[9:] or head[9:].isdigit())


def _target_path(method: bytes, target: bytes) -> str | None:
    """The path of a request target, or None when the target is not valid for method."""
    if target == b"*":
        return "*" if method == b"OPTIONS" else None
    if method == b"CONNECT":
        return None if b"/" in target else target.decode("ascii")
    if target.startswith(b"/"):
        path = target.split(b"?", 1)[0].split(b"#", 1)[0]
        return path.decode("ascii")
    if target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
        # Absolute form (to a proxy): keep the path; the TCP peer stays the destination.
        parts = urlsplit(target.decode("ascii"))
        if not parts.netloc:
            return None
        return parts.path or "/"
    return None


_FAST_REQUEST = re.compile(
    rb"(GET|POST|PUT|DELETE|HEAD|PATCH|OPTIONS) (/[\x21-\x22\x24-\x3e\x40-\x7e]*)"
    rb"([?#][\x21-\x7e]*)? HTTP/1\.[01]\r\n")
_FAST_HOST = re.compile(rb"\r\nhost:[ \t]*([\x21-\x7e]+)[ \t]*\r\n", re.IGNORECASE)
_FAST_RESPONSE = re.compile(rb"HTTP/1\.[01] ([1-5]\d\d)[ \r]")


def parse_request(data: bytes) -> tuple[Parse, Request | None]:
    fast = _FAST_REQUEST.match(data)
    if fast is not None and fast.end() - fast.start(2) - 11 <= MAX_TARGET:
        # The common shape (origin-form target), in one regex; the rest below.
        method, path, _ = fast.groups()
        end = data.find(b"\r\n\r\n")
        host = _FAST_HOST.search(data, fast.end() - 2, len(data) if end < 0 else end + 2)
        return Parse.COMPLETE, Request(method.decode(), path.decode(),
                                       host.group(1).decode() if host else None)
    line, crlf, rest = data.partition(b"\r\n")
    if not crlf:
        return (Parse.PARTIAL if could_start_request(data) else Parse.INVALID), None
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] not in METHODS or parts[2] not in _VERSIONS:
        return Parse.INVALID, None
    method, target = parts[0], parts[1]
    if not _visible(target) or len(target) > MAX_TARGET:
        return Parse.INVALID, None
    path = _target_path(method, target)
    if path is None:
        return Parse.INVALID, None
    return Parse.COMPLETE, Request(method.decode("ascii"), path, _host(rest))


def _host(headers: bytes) -> str | None:
    for raw in headers.split(b"\r\n"):
        if not raw:
            break
        name, colon, value = raw.partition(b":")
        if colon and name.strip().lower() == b"host":
            host = value.strip().decode("latin-1")
            return host if host and _visible(host.encode("latin-1")) else None
    return None


# Answers by the first 13 bytes of a status line: at most 2 versions x 500 codes
# x 2 endings, filled as they are seen.
_BY_STATUS_LINE: dict[bytes, tuple[Parse, Response]] = {}


def parse_response(data: bytes) -> tuple[Parse, Response | None]:
    """Needs only the status line's first 13 bytes: `HTTP/1.x NNN` and a space or CR."""
    known = _BY_STATUS_LINE.get(data[:13])
    if known is not None:
        return known
    fast = _FAST_RESPONSE.match(data)
    if fast is not None:
        status = int(fast.group(1))
        answer = Parse.COMPLETE, Response(status, error=status >= 500)
        _BY_STATUS_LINE[data[:13]] = answer
        return answer
    if len(data) < 13:
        return (Parse.PARTIAL if could_start_response(data) else Parse.INVALID), None
    if data[:8] not in _VERSIONS or data[8:9] != b" ":
        return Parse.INVALID, None
    code = data[9:12]
    if not code.isdigit() or data[12:13] not in (b" ", b"\r"):
        return Parse.INVALID, None
    status = int(code)
    if not 100 <= status <= 599:
        return Parse.INVALID, None
    return Parse.COMPLETE, Response(status, error=status >= 500)
