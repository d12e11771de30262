"""Reading an ingest request body: size limit, optional gzip, JSON.

The limit applies to the body as sent and again to the decompressed bytes,
so a small gzip bomb is refused as surely as a large upload; neither is ever
held in memory beyond the limit.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from starlette.requests import Request


class BodyError(Exception):
    """The body cannot be used: HTTP `status`, a `reason` label and a message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def _too_large(limit: int, what: str) -> BodyError:
    return BodyError(413, "too_large", f"{what} exceeds the limit of {limit} bytes"
                     " (TOPOLOGY_MAX_BODY_BYTES); send smaller batches")


async def read_body(request: Request, limit: int) -> bytes:
    """The (decompressed) body, at most `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, f"the body ({declared} bytes)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, "the body")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gunzip(body, limit)
    raise BodyError(415, "unsupported",
                    f"Content-Encoding {encoding!r} is not supported (use gzip or none)")


def gunzip(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BodyError(400, "bad_json", f"the body is not valid gzip: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise _too_large(limit, "the decompressed body")
    if not inflater.eof:
        raise BodyError(400, "bad_json", "the gzip body is truncated")
    return out


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BodyError(400, "bad_json", f"the body is not UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BodyError(400, "bad_json", f"the body is not JSON: {exc.msg} at line {exc.lineno}"
                        f" column {exc.colno}") from None


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()
