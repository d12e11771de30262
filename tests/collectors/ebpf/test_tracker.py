"""The tracker turns socket events into calls: HTTP pairing, plain TCP, DNS, and bounds.

Driven by event records built in user space (the kernel side is covered by the
tests marked ebpf); no phantom edge may come out of a partial or malformed head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from collectors.ebpf import events as ev
from collectors.ebpf.identity import Identities
from collectors.ebpf.listeners import Listener
from collectors.ebpf.listeners_table import ListenerTable
from collectors.ebpf.outbox import Outbox
from collectors.ebpf.stats import Stats
from collectors.ebpf.tracker import Limits, Tracker
from tests.collectors.ebpf import synthetic as s

CLIENT, SERVER = 100, 200
MS = 1_000_000
OUT, IN = ev.DIR_EGRESS, ev.DIR_INGRESS


class Harness:
    def __init__(self, tmp_path: Path, limits: Limits | None = None) -> None:
        proc = s.fake_proc(tmp_path / "proc", {
            CLIENT: ("0::/\n", "/usr/bin/curl"),
            SERVER: ("0::/system.slice/api.service\n", "/usr/bin/python3.11"),
        })
        self.identities = Identities(proc=proc, host="node-1")
        self.listeners = ListenerTable(
            self.identities, scan=lambda: [Listener("0.0.0.0", 80, SERVER)],
            addresses=lambda: {"127.0.0.1", "10.0.0.5"})
        self.listeners.refresh(0.0)
        self.stats = Stats()
        self.calls: list[dict[str, Any]] = []
        self.dns: list[dict[str, Any]] = []
        self.released: list[tuple[int, int]] = []
        self.stopped: list[tuple[int, int]] = []
        self.tracker = Tracker(
            self.identities, self.listeners, self.stats, self.calls.append, self.dns.append,
            wall_offset=1_000.0, limits=limits or Limits(), release=self._release,
            stop_capture=lambda tgid, fd: self.stopped.append((tgid, fd)))

    def _release(self, tgid: int, fd: int) -> tuple[int, int]:
        self.released.append((tgid, fd))
        return 11, 22

    def client_conn(self, fd: int = 5, port: int = 80, ts: int = 0) -> None:
        self.tracker.handle(s.conn(CLIENT, fd, ev.ROLE_CLIENT, remote=("10.0.0.5", port),
                                   local=("10.0.0.9", 0), ts=ts, comm=b"curl"))

    def feed(self, steps: list[tuple[int, bytes] | tuple[int, bytes, int]], fd: int = 5,
             start: int = 1, raw: bool = False) -> None:
        """Payload records, decoded and given to handle(), or (raw) laid out one after
        the other in a buffer and read by the ring reader's record handler."""
        records = []
        for index, step in enumerate(steps):
            direction, payload = step[0], step[1]
            length = step[2] if len(step) == 3 else None
            records.append(s.data_record(CLIENT, fd, direction, payload,
                                         ts=(start + index) * MS, length=length))
        if not raw:
            for record in records:
                self.tracker.handle(s.decode(record))
            return
        on_record = self.tracker.record_handler()
        ring = memoryview(b"".join(records))
        offset = 0
        for record in records:
            on_record(ring, offset)
            offset += len(record)


def summary(calls: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(c["protocol"], c.get("method"), c.get("path"), c.get("status")) for c in calls]


GET = b"GET /items/1 HTTP/1.1\r\nHost: api.local\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

CONVERSATIONS = [
    ("keep-alive, three requests", [(OUT, GET), (IN, OK), (OUT, b"POST /orders HTTP/1.1\r\n\r\n"),
                                    (IN, b"HTTP/1.1 201 Created\r\n\r\n"),
                                    (OUT, b"DELETE /orders/7 HTTP/1.1\r\n\r\n"),
                                    (IN, b"HTTP/1.1 503 Busy\r\n\r\n")],
     [("http", "GET", "/items/1", 200), ("http", "POST", "/orders", 201),
      ("http", "DELETE", "/orders/7", 503)], {}),
    ("pipelined requests answer in order", [(OUT, GET), (OUT, b"GET /b HTTP/1.1\r\n\r\n"),
                                            (IN, OK), (IN, b"HTTP/1.1 404 No\r\n\r\n")],
     [("http", "GET", "/items/1", 200), ("http", "GET", "/b", 404)], {}),
    ("request split across writes", [(OUT, b"GET /spl"), (OUT, b"it HTTP/1.1\r\nHost: h\r\n\r\n"),
                                     (IN, OK)],
     [("http", "GET", "/split", 200)], {}),
    ("response split across reads",
     [(OUT, GET), (IN, b"HTTP/1.1 2"), (IN, b"04 No Content\r\n\r\n")],
     [("http", "GET", "/items/1", 204)], {}),
    ("body chunks are not messages", [(OUT, b"POST /up HTTP/1.1\r\n\r\n"), (OUT, b"x" * 300, 9000),
                                      (IN, OK), (IN, b"more body")],
     [("http", "POST", "/up", 200)], {}),
    ("interim 100 Continue", [(OUT, GET), (IN, b"HTTP/1.1 100 Continue\r\n\r\n"), (IN, OK)],
     [("http", "GET", "/items/1", 200)], {}),
    ("binary on port 80 is plain TCP", [(OUT, b"\x16\x03\x01\x02\x00\x01\x00"), (IN, OK)],
     [("tcp", None, None, None)], {}),
    ("GET * is plain TCP", [(OUT, b"GET * HTTP/1.1\r\n\r\n"), (IN, OK)],
     [("tcp", None, None, None)], {}),
    ("absolute form keeps the path", [(OUT, b"GET http://elsewhere.example/x?q HTTP/1.1\r\n\r\n"),
                                      (IN, OK)],
     [("http", "GET", "/x", 200)], {}),
    ("head cut by the capture is not guessed", [(OUT, b"GET /" + b"a" * 400, 2000), (IN, OK)],
     [("tcp", None, None, None)], {"unparsable_http": 1}),
    ("response before any request", [(IN, OK)], [("tcp", None, None, None)], {}),
    ("redis commands", [(OUT, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"),
                        (IN, b"+OK\r\n"), (OUT, b"*2\r\n$3\r\nget\r\n$1\r\nk\r\n"),
                        (IN, b"$1\r\nv\r\n"), (OUT, b"*1\r\n$4\r\nINCR\r\n"),
                        (IN, b"-ERR wrong number of arguments\r\n")],
     [("redis", "SET", None, None), ("redis", "GET", None, None),
      ("redis", "INCR", None, None)], {}),
    ("redis command split across writes", [(OUT, b"*2\r\n$3\r\nGE"),
                                           (OUT, b"T\r\n$1\r\nk\r\n"), (IN, b"$-1\r\n")],
     [("redis", "GET", None, None)], {}),
    ("unanswered requests expire at close", [(OUT, GET)], [], {"expired_requests": 1}),
    ("garbage after a keep-alive exchange", [(OUT, GET), (IN, OK), (OUT, b"GET /half"),
                                             (OUT, b"\x00\x01binary"), (IN, OK)],
     [("http", "GET", "/items/1", 200)], {"unparsable_http": 1}),
]


@pytest.mark.parametrize("raw", [False, True], ids=["decoded", "raw"])
@pytest.mark.parametrize(("case", "steps", "expected", "losses"), CONVERSATIONS,
                         ids=[c[0] for c in CONVERSATIONS])
def test_client_conversation(tmp_path: Path, case: str, steps: list[Any],
                             expected: list[tuple[Any, ...]], losses: dict[str, int],
                             raw: bool) -> None:
    h = Harness(tmp_path)
    h.client_conn()
    h.feed(steps, raw=raw)
    h.tracker.handle(s.close(CLIENT, 5, ts=100 * MS, sent=500, received=700))
    assert summary(h.calls) == expected
    reported = {k: v for k, v in h.stats.losses().items() if v}
    assert reported == losses
    assert h.tracker.conns == {}
    assert h.tracker.pending_total == 0


def test_http_call_fields(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.client_conn(ts=0)
    h.feed([(OUT, GET), (IN, OK)], start=2)
    (call,) = h.calls
    assert call["side"] == "client"
    assert call["source"] == {"ip": "10.0.0.9", "workload": {"name": "curl", "kind": "Process",
                                                            "host": "node-1"}}
    assert call["destination"] == {"ip": "10.0.0.5", "port": 80, "workload": {
        "name": "api", "kind": "Process", "host": "node-1"}}
    assert call["host"] == "api.local"
    assert call["duration_ms"] == pytest.approx(1.0)
    assert call["timestamp"] == pytest.approx(1_000.0 + 0.002)
    assert call["error"] is False


def test_server_side_call(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.tracker.handle(s.conn(SERVER, 7, ev.ROLE_SERVER, remote=("192.0.2.50", 40000),
                            local=("10.0.0.5", 80), ts=0))
    for i, (direction, payload) in enumerate([(IN, GET), (OUT, b"HTTP/1.1 500 Boom\r\n\r\n")]):
        h.tracker.handle(s.data(SERVER, 7, direction, payload, ts=(i + 1) * 3 * MS,
                                role=ev.ROLE_SERVER))
    (call,) = h.calls
    assert call["side"] == "server"
    assert call["source"] == {"ip": "192.0.2.50"}
    assert call["destination"]["port"] == 80
    assert call["destination"]["workload"]["name"] == "api"
    assert (call["status"], call["error"], call["duration_ms"]) == (500, True, pytest.approx(3.0))


def test_plain_tcp_reports_bytes_and_stops_capture(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.client_conn(port=443)
    h.feed([(OUT, b"\x16\x03\x01\x00\xc8\x01\x00"), (IN, b"\x16\x03\x03")])  # TLS
    h.tracker.handle(s.close(CLIENT, 5, ts=10 * MS, sent=14, received=7))
    (call,) = h.calls
    assert (call["protocol"], call["bytes_sent"], call["bytes_received"]) == ("tcp", 14, 7)
    assert call["duration_ms"] == pytest.approx(10.0)
    assert h.stopped == [(CLIENT, 5)]


def test_process_exit_ends_its_connections(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.client_conn(fd=5, port=6379)
    h.client_conn(fd=6, port=5432)
    h.tracker.handle(s.exit_(CLIENT, ts=50 * MS))
    assert sorted(c["destination"]["port"] for c in h.calls) == [5432, 6379]
    assert all((c["bytes_sent"], c["bytes_received"]) == (11, 22) for c in h.calls)
    assert sorted(h.released) == [(CLIENT, 5), (CLIENT, 6)]
    assert h.tracker.conns == {}


def test_dns_answer_becomes_an_observation(tmp_path: Path) -> None:
    from tests.collectors.ebpf.test_dns import POINTER, _rr, response

    h = Harness(tmp_path)
    payload = response("db.test", [_rr(POINTER, 1, 30, bytes([10, 1, 2, 3]))])
    h.tracker.handle(s.data(CLIENT, 9, IN, payload, ts=5 * MS, role=ev.ROLE_DATAGRAM,
                            transport=ev.TRANSPORT_UDP))
    h.tracker.handle(s.data(CLIENT, 9, IN, b"\x00\x01junk", ts=6 * MS, role=ev.ROLE_DATAGRAM,
                            transport=ev.TRANSPORT_UDP))
    assert h.dns == [{"name": "db.test", "ips": ["10.1.2.3"], "ttl": 30,
                      "timestamp": pytest.approx(1_000.005)}]
    assert h.stats.unparsable["dns"] == 1


def test_connection_table_is_bounded(tmp_path: Path) -> None:
    h = Harness(tmp_path, Limits(max_conns=16))
    for fd in range(40):
        h.client_conn(fd=fd, port=6379, ts=fd)
        assert len(h.tracker.conns) <= 16
    assert h.stats.evicted_connections == 24
    assert len(h.calls) == 24  # each evicted connection is still reported once


def test_pending_requests_are_bounded(tmp_path: Path) -> None:
    h = Harness(tmp_path, Limits(max_pending=100, max_pending_per_conn=4))
    h.client_conn()
    h.feed([(OUT, GET)] * 6 + [(IN, OK)] * 6)
    assert h.calls == []  # gave up on the connection: no pairing guessed
    assert h.stats.evicted_requests == 5
    assert h.tracker.pending_total == 0


def test_expire_drops_old_requests_and_idle_connections(tmp_path: Path) -> None:
    h = Harness(tmp_path, Limits(request_timeout_ns=10 * MS, idle_timeout_ns=1000 * MS))
    h.client_conn(ts=0)
    h.feed([(OUT, GET)], start=1)
    h.tracker.expire(5 * MS)
    assert h.tracker.pending_total == 1
    h.tracker.expire(20 * MS)
    assert (h.tracker.pending_total, h.stats.expired_requests) == (0, 1)
    h.tracker.expire(2000 * MS)
    assert h.tracker.conns == {}


def test_batches_validate_against_the_schema(tmp_path: Path) -> None:
    from tests.collectors.ebpf.test_dns import POINTER, _rr, response

    h = Harness(tmp_path)
    stats = Stats()
    outbox = Outbox("node-1", stats, batch_size=1000)
    h.tracker.emit_call = lambda item: outbox.add("calls", item)
    h.tracker.emit_dns = lambda item: outbox.add("dns", item)
    table = ListenerTable(h.identities, scan=lambda: [Listener("0.0.0.0", 80, SERVER)],
                          addresses=lambda: {"127.0.0.1", "10.0.0.5"})
    for lease in table.refresh(5.0):
        outbox.add("endpoints", lease)
    h.client_conn()
    h.feed([(OUT, GET), (IN, OK)])
    h.client_conn(fd=6, port=6379)
    h.tracker.handle(s.close(CLIENT, 6, ts=10 * MS, sent=1, received=2))
    h.tracker.handle(s.data(CLIENT, 9, IN, response("x.test", [_rr(POINTER, 1, 5, bytes(4))]),
                            ts=MS, transport=ev.TRANSPORT_UDP))
    batch = outbox.seal()
    assert batch is not None
    assert {k: len(v) for k, v in batch.items() if isinstance(v, list)} == {
        "calls": 2, "dns": 1, "endpoints": 1}
    s.batch_validator().validate(batch)


def test_listener_leases_open_and_close(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    listening = [Listener("0.0.0.0", 80, SERVER), Listener("127.0.0.1", 9000, SERVER)]
    table = ListenerTable(h.identities, scan=lambda: list(listening),
                          addresses=lambda: {"127.0.0.1", "10.0.0.5", "fd00::5"})
    opened = table.refresh(10.0)
    api = {"name": "api", "kind": "Process", "host": "node-1"}
    assert sorted((e["ip"], e["port"]) for e in opened) == [("10.0.0.5", 80), ("fd00::5", 80)]
    assert all(e["workload"] == api and e["from"] == 10.0 and "to" not in e for e in opened)
    assert table.lookup("127.0.0.1", 9000) == api  # loopback: named, but never leased
    assert table.lookup("192.0.2.1", 80) is None  # not this host
    assert table.refresh(20.0) == []
    listening.clear()
    closed = table.refresh(30.0)
    assert sorted((e["ip"], e["from"], e["to"]) for e in closed) == [
        ("10.0.0.5", 10.0, 30.0), ("fd00::5", 10.0, 30.0)]


def test_redis_errors_are_marked(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.client_conn(port=6379)
    h.feed([(OUT, b"*1\r\n$4\r\nPING\r\n"), (IN, b"+PONG\r\n"),
            (OUT, b"*1\r\n$4\r\nBOOM\r\n"), (IN, b"-ERR unknown command\r\n")])
    assert [(c["method"], c["error"], "status" in c, "path" in c) for c in h.calls] == [
        ("PING", False, False, False), ("BOOM", True, False, False)]


def test_new_host_addresses_are_picked_up_on_a_miss(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    now = [0.0]
    addresses = {"10.0.0.5"}
    table = ListenerTable(h.identities, scan=lambda: [Listener("0.0.0.0", 80, SERVER)],
                          addresses=lambda: set(addresses), clock=lambda: now[0])
    table.refresh(0.0)
    addresses.add("10.9.0.1")  # a veth appears
    now[0] = 0.5
    assert table.lookup("10.9.0.1", 80) is None  # read less than a second ago
    now[0] = 1.5
    assert table.lookup("10.9.0.1", 80) == {"name": "api", "kind": "Process", "host": "node-1"}
    assert table.lookup("10.9.0.1", 81) is None  # nobody listens there
