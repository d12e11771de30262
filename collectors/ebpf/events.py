"""The kernel's event records, decoded with a ctypes Structure built from events.h.

events.h is the single definition of the layout: this module parses its
#defines and `struct event` (fixed-width fields only) and builds the matching
ctypes Structure for a given MAX_HEAD, so the C and the decoder cannot drift.
"""

from __future__ import annotations

import ctypes
import re
import struct
from collections import namedtuple
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

_CTYPES = {
    "u8": ctypes.c_uint8,
    "u16": ctypes.c_uint16,
    "u32": ctypes.c_uint32,
    "u64": ctypes.c_uint64,
    "s32": ctypes.c_int32,
    "char": ctypes.c_char,
}
_FIELD = re.compile(r"^\s*(\w+)\s+(\w+)(?:\[(\w+)\])?;\s*$")
_DEFINE = re.compile(r"^\s*#define\s+(\w+)\s+(\d+)\s*$", re.MULTILINE)


def header_text() -> str:
    return resources.files(__package__).joinpath("events.h").read_text()


def program_text() -> str:
    return resources.files(__package__).joinpath("agent.c").read_text()


@cache
def constants() -> dict[str, int]:
    """Every numeric #define of events.h (EV_*, ROLE_*, DIR_*, LOST_*, MAX_HEAD)."""
    return {name: int(value) for name, value in _DEFINE.findall(header_text())}


def struct_fields(text: str, name: str = "event") -> list[tuple[str, str, str | None]]:
    """(type, field, array length or None) of `struct <name>` in a header."""
    match = re.search(r"struct\s+" + name + r"\s*\{(.*?)\};", text, re.DOTALL)
    if match is None:
        raise ValueError(f"events.h: no struct {name}")
    fields = []
    for line in match.group(1).splitlines():
        if not line.strip():
            continue
        parsed = _FIELD.match(line)
        if parsed is None or parsed.group(1) not in _CTYPES:
            raise ValueError(f"events.h: struct {name}: unsupported field line {line.strip()!r}")
        fields.append((parsed.group(1), parsed.group(2), parsed.group(3)))
    return fields


@cache
def event_struct(max_head: int) -> type[ctypes.Structure]:
    """The ctypes twin of `struct event` compiled with MAX_HEAD=max_head."""
    defines = constants()
    layout: list[tuple[str, object]] = []
    for ctype, name, length in struct_fields(header_text()):
        base = _CTYPES[ctype]
        if length is None:
            layout.append((name, base))
            continue
        size = max_head if length == "MAX_HEAD" else int(defines.get(length, length))
        layout.append((name, base * size))
    return type("Event", (ctypes.Structure,), {"_fields_": layout})


_CODES = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q", "s32": "i"}


@cache
def record_decoder(max_head: int) -> Callable[[Any, int], Any]:
    """decode(buffer, offset) -> a named tuple of `struct event`'s fields plus `payload`
    (the captured bytes of `buf`, cap_len long). Arrays come out as bytes.

    One struct.unpack_from per record: several times cheaper than a ctypes copy
    and its per-field descriptors, on the agent's hottest path.
    """
    defines = constants()
    fmt = "<"
    names: list[str] = []
    for ctype, name, length in struct_fields(header_text()):
        if name == "buf":
            break
        if length is None:
            fmt += _CODES[ctype]
        else:
            fmt += f"{max_head if length == 'MAX_HEAD' else int(defines.get(length, length))}s"
        names.append(name)
    header = struct.Struct(fmt)
    if header.size != event_struct(max_head).buf.offset:
        raise ValueError(f"events.h: record header is {header.size} bytes packed, "
                         f"{event_struct(max_head).buf.offset} aligned: add explicit padding")
    record = namedtuple("Record", [*names, "payload"])  # type: ignore[misc]
    cap_index = names.index("cap_len")
    size = header.size
    unpack_from = header.unpack_from

    def decode(buffer: Any, offset: int = 0) -> Any:
        values = unpack_from(buffer, offset)
        start = offset + size
        return record(*values, bytes(buffer[start : start + values[cap_index]]))

    return decode


EV_CONN = constants()["EV_CONN"]
EV_DATA = constants()["EV_DATA"]
EV_CLOSE = constants()["EV_CLOSE"]
EV_EXIT = constants()["EV_EXIT"]
ROLE_CLIENT = constants()["ROLE_CLIENT"]
ROLE_SERVER = constants()["ROLE_SERVER"]
ROLE_DATAGRAM = constants()["ROLE_DATAGRAM"]
DIR_EGRESS = constants()["DIR_EGRESS"]
DIR_INGRESS = constants()["DIR_INGRESS"]
TRANSPORT_TCP = constants()["TRANSPORT_TCP"]
TRANSPORT_UDP = constants()["TRANSPORT_UDP"]
FLAG_LOOPBACK_PEER = constants()["FLAG_LOOPBACK_PEER"]
LOST_SLOTS = constants()["LOST_SLOTS"]
LOST_NAMES = {constants()[key]: key[5:].lower() for key in constants() if key.startswith("LOST_")
              and key != "LOST_SLOTS"}
