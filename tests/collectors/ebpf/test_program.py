"""The BPF program alone (real kernel, records read by our ring reader): what it captures.

A client process uploads a body in many writes on a keep-alive connection, then
sends a second request. Only the heads reach user space: a read or write in the
same direction as a long one before it is the rest of that message and is not
copied, while its bytes are still counted.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors.ebpf import events as ev
from collectors.ebpf.identity import Identities
from collectors.ebpf.listeners_table import ListenerTable
from collectors.ebpf.program import Program, ProgramOptions
from collectors.ebpf.stats import Stats
from collectors.ebpf.tracker import Tracker
from tests.collectors.ebpf import live

pytestmark = pytest.mark.ebpf

CHUNK, CHUNKS = 4096, 16
HEAD = (b"POST /upload HTTP/1.1\r\nHost: up.test\r\n"
        b"Content-Length: %d\r\n\r\n" % (CHUNK * CHUNKS))
SECOND = b"GET /next HTTP/1.1\r\nHost: up.test\r\n\r\n"
CREATED = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

# One process: a server thread on loopback (its side is not traced) and a client
# that writes the head, then the body in CHUNKS writes, reads the answer, asks again.
CLIENT = f"""
import os, socket, threading
HEAD, SECOND, CHUNK, CHUNKS = {HEAD!r}, {SECOND!r}, {CHUNK}, {CHUNKS}
CREATED, OK = {CREATED!r}, {OK!r}
listener = socket.create_server(("127.0.0.1", 0))
def serve():
    conn, _ = listener.accept()
    data = b""
    while len(data) < len(HEAD) + CHUNK * CHUNKS:
        data += conn.recv(65536)
    conn.sendall(CREATED)
    data = b""
    while not data.endswith(b"\\r\\n\\r\\n"):
        data += conn.recv(65536)
    conn.sendall(OK)
    conn.close()
server = threading.Thread(target=serve)
server.start()
client = socket.create_connection(listener.getsockname())
client.sendall(HEAD)
for _ in range(CHUNKS):
    client.sendall(b"x" * CHUNK)
assert client.recv(4096) == CREATED
client.sendall(SECOND)
assert client.recv(4096) == OK
server.join()
print(os.getpid(), client.fileno())
client.close()
"""


@pytest.fixture(scope="module")
def program() -> Iterator[Program]:
    live.require_ebpf()
    loaded = Program(ProgramOptions(ringbuf_pages=256))
    yield loaded
    loaded.close()


def test_body_chunks_are_counted_not_copied(program: Program, tmp_path: Path) -> None:
    records: list[Any] = []
    program.open(records.append)
    program.consume()
    records.clear()
    pid, fd = (int(word) for word in live.run([sys.executable, "-c", CLIENT]).stdout.split())
    program.consume()
    mine = [r for r in records if r.tgid == pid and r.fd == fd]
    data = [(r.direction, r.payload[:12], r.len) for r in mine if r.kind == ev.EV_DATA]
    assert data == [
        (ev.DIR_EGRESS, HEAD[:12], len(HEAD)),        # the head: short, captured
        (ev.DIR_EGRESS, b"x" * 12, CHUNK),            # after a short write: may be a head
        (ev.DIR_INGRESS, CREATED[:12], len(CREATED)),         # the other way: a new head
        (ev.DIR_EGRESS, SECOND[:12], len(SECOND)),    # the next request
        (ev.DIR_INGRESS, OK[:12], len(OK)),
    ]
    for record in mine:
        if record.kind == ev.EV_DATA:
            assert record.cap_len == min(record.len, 256) == len(record.payload)
    (close,) = [r for r in mine if r.kind == ev.EV_CLOSE]
    assert close.bytes_sent == len(HEAD) + CHUNK * CHUNKS + len(SECOND)
    assert close.bytes_received == len(CREATED) + len(OK)

    calls: list[dict[str, Any]] = []
    identities = Identities()
    tracker = Tracker(identities, ListenerTable(identities, scan=list), Stats(), calls.append,
                      lambda _: None, wall_offset=0.0)
    for record in mine:
        tracker.handle(record)
    assert [(c["method"], c["path"], c["status"], c["host"]) for c in calls] == [
        ("POST", "/upload", 201, "up.test"), ("GET", "/next", 200, "up.test")]
