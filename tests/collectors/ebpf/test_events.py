"""The ctypes decoder is built from events.h; the rendered program carries the options."""

from __future__ import annotations

import ctypes

import pytest

from collectors.ebpf import events
from collectors.ebpf.program import ProgramOptions, render


@pytest.mark.parametrize("max_head", [16, 256, 4096])
def test_event_struct_follows_the_header(max_head: int) -> None:
    struct = events.event_struct(max_head)
    header_fields = events.struct_fields(events.header_text())
    assert [name for name, _ in struct._fields_] == [name for _, name, _ in header_fields]
    assert struct.buf.size == max_head
    assert struct.comm.size == 16
    assert ctypes.sizeof(struct) % 8 == 0
    assert ctypes.sizeof(struct) == struct.buf.offset + max_head


def test_unsupported_field_is_reported() -> None:
    with pytest.raises(ValueError, match="unsupported field line 'float x;'"):
        events.struct_fields("struct event {\n    u64 a;\n    float x;\n};")


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


def test_record_decoder_reads_what_ctypes_writes() -> None:
    struct_ = events.event_struct(64)
    event = struct_(kind=events.EV_DATA, tgid=7, pid=8, fd=-3, len=1000, cap_len=5, ts_ns=2**40,
                    rport=443, comm=b"curl")
    event.raddr[:4] = [10, 0, 0, 1]
    ctypes.memmove(ctypes.addressof(event) + struct_.buf.offset, b"hello", 5)
    raw = b"\xff" * 8 + bytes(event)  # at an offset, as in the ring buffer
    record = events.record_decoder(64)(raw, 8)
    assert (record.kind, record.tgid, record.pid, record.fd, record.len, record.ts_ns,
            record.rport) == (events.EV_DATA, 7, 8, -3, 1000, 2**40, 443)
    assert record.raddr[:4] == bytes([10, 0, 0, 1])
    assert record.comm.rstrip(b"\0") == b"curl"
    assert record.payload == b"hello"
