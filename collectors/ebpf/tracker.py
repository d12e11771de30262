"""Turns kernel events into calls and DNS observations (collector format dicts).

Per tracked socket (process, fd) it keeps the peer addresses, the protocol
found in the first payload and, for HTTP/1.x and Redis, the FIFO of requests
waiting for their responses (keep-alive and pipelining answer in order).
Everything is bounded: the connection table (oldest evicted), the pending requests (a
connection that overflows stops being parsed as HTTP), the partial heads kept
while a message is split across reads. Whatever cannot be parsed is counted
and never becomes a call.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from types import ModuleType
from typing import Any

from collectors.ebpf import events as ev
from collectors.ebpf.connections import DONE, TCP, UNKNOWN, Conn, Limits, address
from collectors.ebpf.identity import Identities
from collectors.ebpf.listeners_table import ListenerTable
from collectors.ebpf.protocols import dns, http1, postgres, resp
from collectors.ebpf.protocols.http1 import Parse
from collectors.ebpf.stats import Stats

Emit = Callable[[dict[str, Any]], None]
TRANSPORT_TCP, DIR_INGRESS, DIR_EGRESS = ev.TRANSPORT_TCP, ev.DIR_INGRESS, ev.DIR_EGRESS
ROLE_CLIENT, EV_DATA = ev.ROLE_CLIENT, ev.EV_DATA
_NOT_PARSED = (TCP, DONE)
_DATA_FIELDS = ("kind", "role", "direction", "transport", "tgid", "fd", "len", "ts_ns",
                "cap_len", "pad")


class Tracker:
    def __init__(
        self,
        identities: Identities,
        listeners: ListenerTable,
        stats: Stats,
        emit_call: Emit,
        emit_dns: Emit,
        wall_offset: float,
        limits: Limits | None = None,
        release: Callable[[int, int], tuple[int, int] | None] | None = None,
        stop_capture: Callable[[int, int], None] | None = None,
    ) -> None:
        self.identities = identities
        self.listeners = listeners
        self.stats = stats
        self.emit_call = emit_call
        self.emit_dns = emit_dns
        self.wall_offset = wall_offset
        self.limits = limits or Limits()
        self.release = release
        self.stop_capture = stop_capture
        self.conns: OrderedDict[tuple[int, int], Conn] = OrderedDict()
        self.by_tgid: dict[int, set[int]] = {}
        self.pending_total = 0
        self._counts = stats.events

    def wall(self, ts_ns: int) -> float:
        return ts_ns / 1e9 + self.wall_offset

    def record_handler(self) -> Callable[[Any, int], None]:
        """on_record(buffer, offset) for the ring reader: a payload record is read straight
        from the buffer into locals (no record object; its payload is copied only when
        its socket is parsed); the other kinds are decoded and given to handle()."""
        decode = ev.record_decoder()
        packed, names = ev.record_format("data_event")
        if names != _DATA_FIELDS:
            raise ValueError(f"events.h: struct data_event is {names}, expected {_DATA_FIELDS}")
        unpack_from, size = packed.unpack_from, packed.size
        counts, on_data, handle = self._counts, self._on_data, self.handle

        def on_record(buffer: Any, offset: int) -> None:
            if buffer[offset] != EV_DATA:
                handle(decode(buffer, offset))
                return
            counts["data"] += 1
            _, _, direction, transport, tgid, fd, length, ts_ns, cap_len, _ = unpack_from(
                buffer, offset)
            on_data(tgid, fd, direction, transport, cap_len == length, ts_ns, buffer,
                    offset + size, cap_len)

        return on_record

    def handle(self, event: Any) -> None:
        """One decoded record (events.record_decoder)."""
        kind = event.kind
        if kind == EV_DATA:
            self._counts["data"] += 1
            self._on_data(event.tgid, event.fd, event.direction, event.transport,
                          event.cap_len == event.len, event.ts_ns, event.payload, 0,
                          event.cap_len)
        elif kind == ev.EV_CONN:
            self._counts["conn"] += 1
            self._on_conn(event)
        elif kind == ev.EV_CLOSE:
            self._counts["close"] += 1
            conn = self._pop(event.tgid, event.fd)
            if conn is not None:
                self._finish(conn, event.ts_ns, event.bytes_sent, event.bytes_received)
        elif kind == ev.EV_EXIT:
            self._counts["exit"] += 1
            self._on_exit(event.tgid, event.ts_ns)

    # connections

    def _on_conn(self, event: Any) -> None:
        old = self._pop(event.tgid, event.fd)
        if old is not None:  # fd reused without a close we saw
            self._finish(old, event.ts_ns, None, None)
        comm = event.comm.split(b"\0", 1)[0].decode("utf-8", "replace")
        if event.flags & ev.FLAG_LOOPBACK_PEER:
            # Server side of a loopback connection: its client reports the calls;
            # only learn who listens on this port.
            if event.lport:
                self.listeners.learn(address(event.family, bytes(event.laddr)), event.lport,
                                     self.identities.workload(event.tgid, comm))
            return
        local_ip = address(event.family, bytes(event.laddr))
        conn = Conn(
            tgid=event.tgid, fd=event.fd, role=event.role, transport=event.transport,
            opened_ns=event.ts_ns, last_ns=event.ts_ns,
            local_ip=local_ip, local_port=event.lport,
            remote_ip=address(event.family, bytes(event.raddr)), remote_port=event.rport,
            workload=self.identities.workload(event.tgid, comm),
        )
        if conn.role == ev.ROLE_SERVER and conn.local_port:
            self.listeners.learn(conn.local_ip, conn.local_port, conn.workload)
        self.stats.connections_opened += 1
        key = (conn.tgid, conn.fd)
        self.conns[key] = conn
        self.by_tgid.setdefault(conn.tgid, set()).add(conn.fd)
        while len(self.conns) > self.limits.max_conns:
            _, evicted = self.conns.popitem(last=False)
            self._unindex(evicted)
            self.stats.evicted_connections += 1
            self._finish(evicted, event.ts_ns, None, None)
        self.stats.connections = len(self.conns)

    def _pop(self, tgid: int, fd: int) -> Conn | None:
        conn = self.conns.pop((tgid, fd), None)
        if conn is not None:
            self._unindex(conn)
        return conn

    def _unindex(self, conn: Conn) -> None:
        fds = self.by_tgid.get(conn.tgid)
        if fds is not None:
            fds.discard(conn.fd)
            if not fds:
                del self.by_tgid[conn.tgid]
        self.pending_total -= len(conn.pending)
        self.stats.pending_requests = self.pending_total
        self.stats.connections = len(self.conns)

    def _on_exit(self, tgid: int, ts_ns: int) -> None:
        for fd in sorted(self.by_tgid.get(tgid, ())):
            conn = self._pop(tgid, fd)
            if conn is None:
                continue
            totals = self.release(tgid, fd) if self.release else None
            sent, received = totals if totals else (None, None)
            self._finish(conn, ts_ns, sent, received)
        self.identities.forget(tgid)

    def _finish(self, conn: Conn, ts_ns: int, sent: int | None, received: int | None) -> None:
        """A connection ended: expire its unanswered requests, report plain TCP."""
        if conn.pending:
            self.stats.expired_requests += len(conn.pending)
        if conn.transport != ev.TRANSPORT_TCP or conn.protocol not in (UNKNOWN, TCP):
            return
        call = self._call(conn, conn.opened_ns, "tcp")
        call["duration_ms"] = max(0.0, (ts_ns - conn.opened_ns) / 1e6)
        if sent is not None:
            call["bytes_sent"] = int(sent)
        if received is not None:
            call["bytes_received"] = int(received)
        self.stats.calls["tcp"] += 1
        self.emit_call(call)

    def _call(self, conn: Conn, start_ns: int, protocol: str) -> dict[str, Any]:
        ends = conn.ends
        if ends is None:
            ends = self._ends(conn)
        return {"timestamp": start_ns / 1e9 + self.wall_offset, "side": ends[2],
                "source": ends[0], "destination": ends[1], "protocol": protocol}

    def _ends(self, conn: Conn) -> tuple[dict[str, Any], dict[str, Any], str]:
        """(source, destination, side) of the connection's calls; kept on the connection
        (every call of a connection shares them) once the destination is named."""
        local = {"ip": conn.local_ip, "workload": conn.workload}
        if conn.role == ev.ROLE_CLIENT:
            remote: dict[str, Any] = {"ip": conn.remote_ip, "port": conn.remote_port}
            owner = conn.peer_workload
            if owner is None:
                owner = conn.peer_workload = self.listeners.lookup(conn.remote_ip,
                                                                   conn.remote_port)
            if owner is None:
                return local, remote, "client"  # not cached: a later scan may name it
            remote["workload"] = owner
            conn.ends = (local, remote, "client")
        else:
            local["port"] = conn.local_port
            conn.ends = ({"ip": conn.remote_ip}, local, "server")
        return conn.ends

    # payloads

    def _on_data(self, tgid: int, fd: int, direction: int, transport: int, whole: bool,
                 ts_ns: int, buffer: Any, start: int, cap_len: int) -> None:
        """A payload: buffer[start:start + cap_len] (whole: nothing was cut off)."""
        if transport != TRANSPORT_TCP:
            if direction == DIR_INGRESS:
                self._on_dns(bytes(buffer[start : start + cap_len]), ts_ns)
            return
        key = (tgid, fd)
        conn = self.conns.get(key)
        if conn is None or conn.protocol in _NOT_PARSED:
            return
        data = bytes(buffer[start : start + cap_len])
        conn.last_ns = ts_ns
        earlier = conn.partial.pop(direction, None) if conn.partial else None
        if earlier is not None:
            data = earlier + data
        if (direction == DIR_EGRESS) == (conn.role == ROLE_CLIENT):
            self.conns.move_to_end(key)  # least recently used first, for eviction
            self._on_request(conn, data, whole, ts_ns, direction, earlier is not None)
        else:
            self._on_response(conn, data, whole, ts_ns, direction, earlier is not None)

    def _on_request(self, conn: Conn, data: bytes, whole: bool, ts_ns: int,
                    direction: int, continued: bool) -> None:
        parser = conn.parser
        if parser is None:  # first message: HTTP/1.x, else Redis, else plain TCP
            chosen: ModuleType = http1
            state, request = http1.parse_request(data)
            if state is Parse.INVALID:
                chosen = resp
                state, request = resp.parse_request(data)
            if state is Parse.INVALID:  # PostgreSQL: a per-connection session, not a module
                session = postgres.session_for(data, conn.remote_port if conn.role ==
                                               ev.ROLE_CLIENT else conn.local_port)
                if session is not None:
                    chosen = session
                    state, request = session.parse_request(data)
        else:
            chosen = parser
            state, request = parser.parse_request(data)
        if state is Parse.COMPLETE and request is not None:
            limits = self.limits
            if (len(conn.pending) >= limits.max_pending_per_conn
                    or self.pending_total >= limits.max_pending):
                self.stats.evicted_requests += len(conn.pending) + 1
                self._give_up(conn)
                return
            conn.parser = chosen
            conn.protocol = chosen.NAME
            conn.pending.append((ts_ns, request))
            self.pending_total += 1
            self.stats.pending_requests = self.pending_total
        elif state is Parse.PARTIAL and whole and len(data) < 2 * self.limits.max_head:
            conn.partial[direction] = data
        elif parser is None:
            if state is not Parse.INVALID:
                self.stats.unparsable[chosen.NAME] += 1
            self._give_up(conn)
        elif state is not Parse.INVALID or continued:
            # Looked like a request head but could not be completed: the response
            # that follows has no request to pair with; stop parsing this socket.
            self.stats.unparsable[conn.protocol] += 1
            self._give_up(conn, keep_parsed=True)

    def _on_response(self, conn: Conn, data: bytes, whole: bool, ts_ns: int,
                     direction: int, continued: bool) -> None:
        parser = conn.parser
        if parser is None:
            self._give_up(conn)  # the peer that should answer spoke first: not parsed
            return
        state, response = parser.parse_response(data)
        if state is Parse.PARTIAL and whole and len(data) < 2 * self.limits.max_head:
            conn.partial[direction] = data
            return
        if state is not Parse.COMPLETE or response is None:
            if continued:  # a split status line that never completed
                self.stats.unparsable[conn.protocol] += 1
                self._give_up(conn, keep_parsed=True)
            return  # else: body bytes of a response
        if response.interim:
            return  # 100 Continue and the like: the final response follows
        if not conn.pending:
            self.stats.unmatched_responses += 1
            return
        start_ns, request = conn.pending.popleft()
        self.pending_total -= 1
        stats = self.stats
        stats.pending_requests = self.pending_total
        protocol = conn.protocol
        ends = conn.ends or self._ends(conn)
        call = {"timestamp": start_ns / 1e9 + self.wall_offset, "side": ends[2],
                "source": ends[0], "destination": ends[1], "protocol": protocol,
                "method": request.method}
        if request.path:
            call["path"] = request.path
        if request.host:
            call["host"] = request.host
        if response.status is not None:
            call["status"] = response.status
        call["error"] = response.error
        call["duration_ms"] = (ts_ns - start_ns) / 1e6 if ts_ns > start_ns else 0.0
        stats.calls[protocol] += 1
        self.emit_call(call)
        if response.upgrade:
            self._give_up(conn, keep_parsed=True)  # switched protocols (WebSocket, h2c)

    def _give_up(self, conn: Conn, keep_parsed: bool = False) -> None:
        """Stop parsing a socket: plain TCP from now on, or (keep_parsed) a socket whose
        earlier messages were reported and which must not be reported again as TCP."""
        self.pending_total -= len(conn.pending)
        self.stats.pending_requests = self.pending_total
        conn.pending.clear()
        conn.partial.clear()
        conn.protocol = DONE if keep_parsed and conn.parser is not None else TCP
        conn.parser = None
        if self.stop_capture is not None:
            self.stop_capture(conn.tgid, conn.fd)

    def _on_dns(self, data: bytes, ts_ns: int) -> None:
        try:
            answer = dns.parse_response(data)
        except dns.DnsError:
            self.stats.unparsable["dns"] += 1
            return
        if answer is None:
            return
        observation: dict[str, Any] = {"name": answer.name, "ips": list(answer.ips),
                                       "timestamp": self.wall(ts_ns)}
        if answer.ttl is not None:
            observation["ttl"] = answer.ttl
        self.stats.dns_answers += 1
        self.emit_dns(observation)

    # time

    def expire(self, now_ns: int) -> None:
        """Drop requests never answered and connections idle too long (no close seen)."""
        limits = self.limits
        for key in list(self.conns):
            conn = self.conns[key]
            while conn.pending and now_ns - conn.pending[0][0] > limits.request_timeout_ns:
                conn.pending.popleft()
                self.pending_total -= 1
                self.stats.expired_requests += 1
            if now_ns - conn.last_ns > limits.idle_timeout_ns:
                self._pop(*key)
                self._finish(conn, now_ns, None, None)
        self.stats.pending_requests = self.pending_total
        self.stats.connections = len(self.conns)
