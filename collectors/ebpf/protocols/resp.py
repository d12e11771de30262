"""Redis (RESP2/RESP3) commands and replies, from the first bytes of a write or read.

A command is an array of bulk strings (`*N\r\n$len\r\nSET\r\n...`); the call's
method is the command name. A reply's first byte tells its type; `-` and `!`
are errors. Inline commands (telnet style) are not recognised. A pipeline
written in one syscall shows only its first command, so it counts as one call.
"""

from __future__ import annotations

import re

from collectors.ebpf.protocols.http1 import Parse, Request, Response

NAME = "redis"
_COMMAND = re.compile(rb"\*([1-9]\d{0,5})\r\n\$([1-9]\d{0,2})\r\n([A-Za-z][A-Za-z_.|-]{0,31})\r\n")
_PREFIX = re.compile(rb"\*(\d{0,6}(\r(\n(\$(\d{0,3}(\r(\n[A-Za-z]{0,32}\r?)?)?)?)?)?)?)?")
_REPLY_TYPES = frozenset(b"+-:$*_,#!=(%~>|")
_ERRORS = frozenset(b"-!")


def parse_request(data: bytes) -> tuple[Parse, Request | None]:
    match = _COMMAND.match(data)
    if match is not None:
        name = match.group(3)
        if int(match.group(2)) != len(name):
            return Parse.INVALID, None
        return Parse.COMPLETE, Request(name.decode("ascii").upper(), "", None)
    if _PREFIX.fullmatch(data) is not None:
        return Parse.PARTIAL, None
    return Parse.INVALID, None


def parse_response(data: bytes) -> tuple[Parse, Response | None]:
    if not data:
        return Parse.PARTIAL, None
    if data[0] not in _REPLY_TYPES:
        return Parse.INVALID, None
    return Parse.COMPLETE, Response(None, error=data[0] in _ERRORS)
