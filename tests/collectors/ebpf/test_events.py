"""The ctypes decoder is built from events.h; the rendered program carries the options."""

from __future__ import annotations

import ctypes

import pytest

from collectors.ebpf import events
from collectors.ebpf.program import ProgramOptions, render


@pytest.mark.parametrize("name", events.STRUCTS)
def test_record_structs_follow_the_header(name: str) -> None:
    struct_ = events.record_struct(name)
    header_fields = events.struct_fields(events.header_text(), name)
    assert [field for field, _ in struct_._fields_] == [field for _, field, _ in header_fields]
    assert struct_._fields_[0][0] == "kind" and struct_.kind.offset == 0
    assert ctypes.sizeof(struct_) % 8 == 0
    packed, names = events.record_format(name)
    assert packed.size == ctypes.sizeof(struct_)
    assert names == tuple(field for _, field, _ in header_fields)


def test_payload_records_are_small() -> None:
    """A payload record is its 32-byte struct plus the bytes captured, nothing more."""
    assert ctypes.sizeof(events.record_struct("data_event")) == 32


def test_implicit_padding_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "struct gap_event {\n    u8 kind;\n    u64 ts_ns;\n};"
    monkeypatch.setattr(events, "header_text", lambda: text)
    with pytest.raises(ValueError, match="struct gap_event is 9 bytes packed, 16 aligned"):
        events.record_format("gap_event")


def test_unsupported_field_is_reported() -> None:
    with pytest.raises(ValueError, match="unsupported field line 'float x;'"):
        events.struct_fields("struct event {\n    u64 a;\n    float x;\n};", "event")


def test_render_prepends_the_options() -> None:
    text = render(ProgramOptions(max_head=128, max_conns=1024, ringbuf_pages=8,
                                 dns_port=5353, agent_tgid=4242))
    head = text.splitlines()[:6]
    assert head == ["#define AGENT_TGID 4242", "#define MAX_HEAD 128", "#define MAX_CONNS 1024",
                    "#define RINGBUF_PAGES 8", "#define DNS_PORT 5353",
                    "#define SKIP_LOOPBACK_SERVER 1"]
    assert '#include "events.h"' in text
    assert "kprobe" not in text.replace("kprobes", "")


@pytest.mark.parametrize(("args", "message"), [
    ({"ringbuf_pages": 3}, "power of two"),
    ({"max_head": 8}, "max_head=8"),
    ({"max_conns": 2}, "max_conns=2"),
])
def test_bad_options(args: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProgramOptions(**args)


def test_decoder_reads_each_kind_as_ctypes_writes_it() -> None:
    conn = events.record_struct("conn_event")(
        kind=events.EV_CONN, tgid=7, pid=8, fd=-3, ts_ns=2**40, rport=443, comm=b"curl",
        flags=events.FLAG_LOOPBACK_PEER)
    conn.raddr[:4] = [10, 0, 0, 1]
    data = bytes(events.record_struct("data_event")(
        kind=events.EV_DATA, tgid=7, fd=5, len=1000, cap_len=5, ts_ns=3)) + b"hello"
    end = events.record_struct("end_event")(kind=events.EV_CLOSE, tgid=7, fd=5, bytes_sent=9,
                                            bytes_received=2**33)
    ring = memoryview(b"\xff" * 8 + bytes(conn) + data + b"\0\0\0" + bytes(end))
    decode = events.record_decoder()
    record = decode(ring, 8)
    assert (record.kind, record.tgid, record.pid, record.fd, record.ts_ns, record.rport,
            record.flags) == (events.EV_CONN, 7, 8, -3, 2**40, 443, events.FLAG_LOOPBACK_PEER)
    assert record.raddr[:4] == bytes([10, 0, 0, 1])
    assert record.comm.rstrip(b"\0") == b"curl"
    offset = 8 + ctypes.sizeof(conn)
    record = decode(ring, offset)
    assert (record.kind, record.fd, record.len, record.payload) == (events.EV_DATA, 5, 1000,
                                                                     b"hello")
    record = decode(ring, offset + len(data) + 3)
    assert (record.kind, record.bytes_sent, record.bytes_received) == (events.EV_CLOSE, 9,
                                                                        2**33)


def test_unknown_kind_is_reported() -> None:
    with pytest.raises(ValueError, match="ring record of unknown kind 99"):
        events.record_decoder()(bytes([99]) + bytes(40), 0)
