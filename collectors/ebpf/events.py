"""The kernel's event records, decoded with formats built from events.h.

events.h is the single definition of the layouts: this module parses its
#defines and its record structs (fixed-width fields only) and builds the
matching struct formats (and ctypes twins for tests), so the C and the
decoder cannot drift.
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


def struct_fields(text: str, name: str) -> list[tuple[str, str, str | None]]:
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


STRUCTS = ("conn_event", "data_event", "end_event")


@cache
def record_struct(name: str) -> type[ctypes.Structure]:
    """The ctypes twin of `struct <name>` (tests build records with it)."""
    defines = constants()
    layout: list[tuple[str, object]] = []
    for ctype, field_name, length in struct_fields(header_text(), name):
        base = _CTYPES[ctype]
        layout.append((field_name, base if length is None
                       else base * int(defines.get(length, length))))
    return type(name, (ctypes.Structure,), {"_fields_": layout})


_CODES = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q", "s32": "i", "char": "c"}


@cache
def record_format(name: str) -> tuple[struct.Struct, tuple[str, ...]]:
    """One struct.Struct for all of `struct <name>`'s fields (arrays come out as bytes),
    checked against the C alignment: the header must spell out its padding."""
    defines = constants()
    fmt = "<"
    names = []
    for ctype, field_name, length in struct_fields(header_text(), name):
        fmt += _CODES[ctype] if length is None else f"{int(defines.get(length, length))}s"
        names.append(field_name)
    packed = struct.Struct(fmt)
    aligned = ctypes.sizeof(record_struct(name))
    if packed.size != aligned:
        raise ValueError(f"events.h: struct {name} is {packed.size} bytes packed, "
                         f"{aligned} aligned: add explicit padding")
    return packed, tuple(names)


@cache
def record_decoder() -> Callable[[Any, int], Any]:
    """decode(buffer, offset) -> the record at offset as a named tuple of its struct's
    fields; a payload record also carries `payload` (the cap_len bytes after it).

    One struct.unpack_from per record, dispatched on the kind byte every record
    starts with: the agent's hottest path.
    """
    table: dict[int, tuple[Any, Any, int, int]] = {}
    for kinds, name in (((EV_CONN,), "conn_event"), ((EV_DATA,), "data_event"),
                        ((EV_CLOSE, EV_EXIT), "end_event")):
        packed, names = record_format(name)
        payload = name == "data_event"
        maker = namedtuple(name, [*names, "payload"] if payload else names)  # type: ignore[misc]
        cap = names.index("cap_len") if payload else -1
        for kind in kinds:
            table[kind] = (packed.unpack_from, maker, packed.size, cap)

    def decode(buffer: Any, offset: int = 0) -> Any:
        try:
            unpack_from, maker, size, cap = table[buffer[offset]]
        except KeyError:
            raise ValueError(f"ring record of unknown kind {buffer[offset]}") from None
        values = unpack_from(buffer, offset)
        if cap < 0:
            return maker(*values)
        start = offset + size
        return maker(*values, bytes(buffer[start : start + values[cap]]))

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
