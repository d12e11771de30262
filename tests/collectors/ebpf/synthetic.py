"""Kernel event records built in user space (ctypes, then the agent's own decoder),
to drive the tracker without a kernel."""

from __future__ import annotations

import ipaddress
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from collectors.ebpf import events as ev

MAX_HEAD = 256
Conn = ev.record_struct("conn_event")
Data = ev.record_struct("data_event")
End = ev.record_struct("end_event")
decode = ev.record_decoder()


def _ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed.ljust(16, b"\x00")


def conn(tgid: int, fd: int, role: int, *, remote: tuple[str, int], local: tuple[str, int],
         ts: int, comm: bytes = b"app", transport: int = ev.TRANSPORT_TCP, flags: int = 0) -> Any:
    event = Conn(kind=ev.EV_CONN, tgid=tgid, pid=tgid, fd=fd, role=role, transport=transport,
                 family=2, ts_ns=ts, rport=remote[1], lport=local[1], comm=comm, flags=flags)
    event.raddr[:] = list(_ip(remote[0]))
    event.laddr[:] = list(_ip(local[0]))
    return decode(bytes(event))


def data_record(tgid: int, fd: int, direction: int, payload: bytes, *, ts: int,
                length: int | None = None, role: int = ev.ROLE_CLIENT,
                transport: int = ev.TRANSPORT_TCP) -> bytes:
    """A payload record as the kernel writes it: the struct, then the captured bytes."""
    captured = payload[:MAX_HEAD]
    event = Data(kind=ev.EV_DATA, tgid=tgid, fd=fd, direction=direction, role=role,
                 transport=transport, ts_ns=ts, len=length or len(payload),
                 cap_len=len(captured))
    return bytes(event) + captured


def data(tgid: int, fd: int, direction: int, payload: bytes, *, ts: int, length: int | None = None,
         role: int = ev.ROLE_CLIENT, transport: int = ev.TRANSPORT_TCP) -> Any:
    return decode(data_record(tgid, fd, direction, payload, ts=ts, length=length, role=role,
                              transport=transport))


def close(tgid: int, fd: int, *, ts: int, sent: int = 0, received: int = 0) -> Any:
    return decode(bytes(End(kind=ev.EV_CLOSE, tgid=tgid, fd=fd, ts_ns=ts,
                            bytes_sent=sent, bytes_received=received)))


def exit_(tgid: int, *, ts: int) -> Any:
    return decode(bytes(End(kind=ev.EV_EXIT, tgid=tgid, fd=-1, ts_ns=ts)))


def fake_proc(root: Path, processes: dict[int, tuple[str, str]]) -> Path:
    """A /proc-shaped directory: pid -> (cgroup text, executable path)."""
    for pid, (cgroup, exe) in processes.items():
        base = root / str(pid)
        base.mkdir(parents=True)
        (base / "cgroup").write_text(cgroup)
        os.symlink(exe, base / "exe")
    return root


def batch_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(resources.files("topology.ingest").joinpath("events.schema.json")
                        .read_text())
    return jsonschema.Draft202012Validator(schema)
