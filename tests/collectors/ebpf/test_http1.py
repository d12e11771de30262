"""HTTP/1.x head parsing: complete, partial (more bytes may follow) or invalid."""

from __future__ import annotations

import pytest

from collectors.ebpf.protocols.http1 import Parse, Request, Response, parse_request, parse_response

REQUESTS = [
    ("origin form", b"GET /a/b?x=1 HTTP/1.1\r\nHost: api:80\r\n\r\n",
     Parse.COMPLETE, Request("GET", "/a/b", "api:80")),
    ("no host header", b"POST /submit HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
     Parse.COMPLETE, Request("POST", "/submit", None)),
    ("host header any case", b"PUT /x HTTP/1.1\r\nhOsT:  example.org \r\n\r\n",
     Parse.COMPLETE, Request("PUT", "/x", "example.org")),
    ("host cut by the capture is not guessed", b"GET / HTTP/1.1\r\nHost: api.exa",
     Parse.COMPLETE, Request("GET", "/", None)),
    ("host after the head is ignored", b"GET / HTTP/1.1\r\n\r\nHost: body\r\n",
     Parse.COMPLETE, Request("GET", "/", None)),
    ("fragment dropped", b"GET /p#frag HTTP/1.1\r\n\r\n",
     Parse.COMPLETE, Request("GET", "/p", None)),
    ("absolute form keeps the path, not the URL host",
     b"GET http://other.example/p/q?z HTTP/1.1\r\n\r\n",
     Parse.COMPLETE, Request("GET", "/p/q", None)),
    ("absolute form without path", b"GET http://other.example HTTP/1.1\r\n\r\n",
     Parse.COMPLETE, Request("GET", "/", None)),
    ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\n\r\n", Parse.COMPLETE, Request("OPTIONS", "*", None)),
    ("CONNECT authority", b"CONNECT db:5432 HTTP/1.1\r\n\r\n",
     Parse.COMPLETE, Request("CONNECT", "db:5432", None)),
    ("GET * is invalid", b"GET * HTTP/1.1\r\n\r\n", Parse.INVALID, None),
    ("relative target", b"GET index.html HTTP/1.1\r\n\r\n", Parse.INVALID, None),
    ("unknown method", b"FETCH / HTTP/1.1\r\n\r\n", Parse.INVALID, None),
    ("lower-case method", b"get / HTTP/1.1\r\n\r\n", Parse.INVALID, None),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Parse.INVALID, None),
    ("extra space", b"GET  / HTTP/1.1\r\n\r\n", Parse.INVALID, None),
    ("control byte in target", b"GET /a\x01b HTTP/1.1\r\n\r\n", Parse.INVALID, None),
    ("TLS client hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", Parse.INVALID, None),
    ("binary", b"\x00\x00\x00\x08\x04\xd2\x16/", Parse.INVALID, None),
    ("redis RESP", b"*1\r\n$4\r\nPING\r\n", Parse.INVALID, None),
    ("split in the method", b"GE", Parse.PARTIAL, None),
    ("split in the target", b"GET /pa", Parse.PARTIAL, None),
    ("split in the version", b"GET /path HTTP/1.", Parse.PARTIAL, None),
    ("split before CRLF", b"GET /path HTTP/1.1", Parse.PARTIAL, None),
    ("split after a bad version", b"GET /path HTTX", Parse.INVALID, None),
    ("empty", b"", Parse.PARTIAL, None),
]


@pytest.mark.parametrize(("case", "data", "state", "request_"), REQUESTS,
                         ids=[case[0] for case in REQUESTS])
def test_parse_request(case: str, data: bytes, state: Parse, request_: Request | None) -> None:
    assert parse_request(data) == (state, request_)


RESPONSES = [
    ("ok", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", Parse.COMPLETE, Response(200)),
    ("1.0 not found", b"HTTP/1.0 404 File not found\r\n", Parse.COMPLETE, Response(404)),
    ("no reason phrase, an error", b"HTTP/1.1 503\r\n\r\n", Parse.COMPLETE,
     Response(503, error=True)),
    ("interim", b"HTTP/1.1 100 Continue\r\n\r\n", Parse.COMPLETE, Response(100)),
    ("status out of range", b"HTTP/1.1 600 Odd\r\n", Parse.INVALID, None),
    ("two-digit status", b"HTTP/1.1 20 OK\r\n\r\n", Parse.INVALID, None),
    ("HTTP/2 status line", b"HTTP/2 200 OK\r\n\r\n", Parse.INVALID, None),
    ("html body", b"<!DOCTYPE html><html>", Parse.INVALID, None),
    ("split", b"HTTP/1.1 2", Parse.PARTIAL, None),
    ("split early", b"HTT", Parse.PARTIAL, None),
    ("binary", b"\x17\x03\x03\x00\x20" + b"\x00" * 12, Parse.INVALID, None),
]


@pytest.mark.parametrize(("case", "data", "state", "response"), RESPONSES,
                         ids=[case[0] for case in RESPONSES])
def test_parse_response(case: str, data: bytes, state: Parse, response: Response | None) -> None:
    assert parse_response(data) == (state, response)
