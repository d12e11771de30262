"""Build, load and read the BPF program (BCC, tracepoints only).

Options become #defines prepended to agent.c; `render` returns that exact
text so it can be reviewed (`topology collect --print-bpf`).
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from collectors.ebpf import events
from collectors.ebpf.bcc_import import import_bcc
from collectors.ebpf.ringbuf import RingReader


@dataclass(frozen=True)
class ProgramOptions:
    max_head: int = 256
    max_conns: int = 65536
    ringbuf_pages: int = 4096  # 16 MiB: rides out a few seconds of an agent starved of CPU
    dns_port: int = 53
    agent_tgid: int = 0
    skip_loopback_server: bool = True

    def __post_init__(self) -> None:
        pages = self.ringbuf_pages
        if pages < 1 or pages & (pages - 1):
            raise ValueError(f"ringbuf_pages={pages}: must be a power of two")
        if not 16 <= self.max_head <= 4096:
            raise ValueError(f"max_head={self.max_head}: must be within 16..4096 bytes")
        if self.max_conns < 16:
            raise ValueError(f"max_conns={self.max_conns}: must be at least 16")

    def defines(self) -> dict[str, int]:
        return {
            "AGENT_TGID": self.agent_tgid or os.getpid(),
            "MAX_HEAD": self.max_head,
            "MAX_CONNS": self.max_conns,
            "RINGBUF_PAGES": self.ringbuf_pages,
            "DNS_PORT": self.dns_port,
            "SKIP_LOOPBACK_SERVER": int(self.skip_loopback_server),
        }


def render(options: ProgramOptions) -> str:
    """The C that BCC compiles: the #defines, then agent.c (which includes events.h)."""
    lines = [f"#define {name} {value}" for name, value in options.defines().items()]
    return "\n".join(lines) + "\n" + events.program_text()


class Program:
    """The loaded BPF program: events out through a ring buffer, losses in an array."""

    def __init__(self, options: ProgramOptions) -> None:
        bcc = import_bcc()
        self.options = options
        with tempfile.TemporaryDirectory(prefix="topology-bpf-") as include:
            header = resources.files(events.__package__).joinpath("events.h").read_bytes()
            Path(include, "events.h").write_bytes(header)
            cflags = [f"-I{include}", "-Wno-macro-redefined"]
            self._bpf = bcc.BPF(text=render(options).encode(), cflags=cflags)
        self._lost = self._bpf[b"lost"]
        self._tracked = self._bpf[b"tracked"]
        self._reader: RingReader | None = None

    def open(self, handler: Callable[[Any], None]) -> None:
        """Route every event record (decoded by events.record_decoder) to handler."""
        decode = events.record_decoder()
        self.open_raw(lambda buffer, offset: handler(decode(buffer, offset)))

    def open_raw(self, on_record: Callable[[Any, int], None]) -> None:
        """Route every record undecoded: on_record(buffer, offset), valid during the call."""
        size = self.options.ringbuf_pages * mmap.PAGESIZE
        self._reader = RingReader(self._bpf[b"events"].map_fd, size, on_record)

    def consume(self) -> int:
        """Drain what the ring buffer holds now (never blocks); returns the count."""
        return self._reader.consume() if self._reader is not None else 0

    def backlog(self) -> float:
        """The fraction of the ring buffer holding records not read yet."""
        return self._reader.used() if self._reader is not None else 0.0

    def lost(self) -> dict[str, int]:
        """Events the kernel could not queue (ring buffer full), by kind, since load."""
        totals = {}
        for slot, name in events.LOST_NAMES.items():
            totals[name] = sum(int(v) for v in self._lost[ctypes.c_int(slot)])
        return totals

    def release(self, tgid: int, fd: int) -> tuple[int, int] | None:
        """Forget a socket the kernel closed behind our back (process exit).

        Returns its (bytes_sent, bytes_received) when the table still held it.
        """
        key = self._tracked.Key(tgid, fd)
        try:
            value = self._tracked[key]
        except KeyError:
            return None
        with contextlib.suppress(KeyError):
            del self._tracked[key]
        return int(value.bytes_sent), int(value.bytes_received)

    def stop_capture(self, tgid: int, fd: int) -> None:
        """Keep counting bytes of a socket but stop copying its payloads."""
        key = self._tracked.Key(tgid, fd)
        try:
            value = self._tracked[key]
        except KeyError:
            return
        value.capture = 0
        self._tracked[key] = value

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._bpf.cleanup()
