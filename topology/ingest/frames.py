"""Pickled objects over a stream socket, one length-prefixed frame each.

What a worker and its build helper (offload.py, build_helper.py) say to each
other: a frame is an 8-byte big-endian length and that many bytes of
pickle (the highest protocol: a placed batch's columns travel as buffers).
Each end has one thread talking on the socket, so frames never interleave.
"""

from __future__ import annotations

import pickle
import socket
import struct
from typing import Any

_HEADER = struct.Struct("!Q")


def dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def loads(data: bytes | bytearray) -> Any:
    return pickle.loads(data)


def send(sock: socket.socket, data: bytes) -> None:
    """Send one frame holding `data` (from `dumps`); OSError when the peer is gone."""
    sock.sendall(_HEADER.pack(len(data)))
    sock.sendall(data)


def receive(sock: socket.socket) -> bytearray:
    """The bytes of the next frame; EOFError when the peer closed its end (or died)."""
    (size,) = _HEADER.unpack(_read(sock, _HEADER.size, first=True))
    return _read(sock, size, first=False)


def _read(sock: socket.socket, size: int, *, first: bool) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            where = "between frames" if first and got == 0 else f"after {got} of {size} bytes"
            raise EOFError(f"the peer closed the connection {where}")
        got += n
    return buffer
