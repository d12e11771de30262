"""A BPF ring buffer consumer in Python, reading the kernel's mmap'ed pages.

BCC's own consumer calls back into Python through ctypes once per record,
which costs more than decoding the record. This reader walks the records
itself (the layout is kernel ABI, the one libbpf's ring_buffer__consume reads):

* page 0, read-write: the consumer position (u64);
* page 1, read-only: the producer position (u64);
* from page 2, read-only: the data area, mapped twice in a row so a record
  that wraps around is contiguous.

Each record starts with an 8-byte header: a u32 length whose bit 31 means
"still being written" and bit 30 "discarded", then a u32 page offset; records
are 8-byte aligned. x86-64 keeps stores in order, so plain reads suffice there.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable
from typing import Any

BUSY = 1 << 31
DISCARD = 1 << 30
HEADER = 8
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


class RingReader:
    def __init__(self, map_fd: int, size: int, handle: Callable[[Any, int], None]) -> None:
        """handle(buffer, offset) is called for every record, in order; the record is
        valid only during the call."""
        if size <= 0 or size & (size - 1):
            raise ValueError(f"ring buffer size {size} is not a power of two")
        page = mmap.PAGESIZE
        self.mask = size - 1
        self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED,
                                   mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._producer = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ,
                                   offset=page)
        self._data = memoryview(self._producer)[page:]
        self._handle = handle

    def consume(self) -> int:
        """Hands every complete record to handle; returns how many.

        The consumer position is published once per 1,024 records and at the end,
        not per record: each store to that shared page pulls its cache line away
        from the CPUs producing into the buffer.
        """
        consumer = _U64.unpack_from(self._consumer, 0)[0]
        producer = _U64.unpack_from(self._producer, 0)[0]
        data, mask, handle = self._data, self.mask, self._handle
        unpack_len = _U32.unpack_from
        count = 0
        try:
            while consumer < producer:
                offset = consumer & mask
                length = unpack_len(data, offset)[0]
                if length & BUSY:
                    break
                size = length & ~(BUSY | DISCARD)
                consumer += (size + HEADER + 7) & ~7
                if not length & DISCARD:
                    handle(data, offset + HEADER)
                    count += 1
                    if not count & 1023:
                        _U64.pack_into(self._consumer, 0, consumer)
        finally:
            _U64.pack_into(self._consumer, 0, consumer)
        return count

    def used(self) -> float:
        """The fraction of the buffer holding records not consumed yet."""
        consumer = _U64.unpack_from(self._consumer, 0)[0]
        producer = _U64.unpack_from(self._producer, 0)[0]
        return (producer - consumer) / (self.mask + 1)

    def close(self) -> None:
        self._data.release()
        self._producer.close()
        self._consumer.close()
