"""Calls placed in their rows: what a build helper sends the worker (offload.py).

`Aggregator.place` fills one, `Aggregator.add_placed` folds it; this module
only holds the columns and how they pickle.
"""

from __future__ import annotations

from array import array

# client, server, bucket start, protocol, method, path template
RowKey = tuple[str, str, int, str, str, str]


class Placed:
    """Calls placed in their rows by `Aggregator.place`, one column per field.

    Columns of machine numbers (array, bytearray) travel between processes as
    a few buffers, where a list of tuples costs a pickled object per value.
    Durations are kept as doubles: `add_calls` adds each to a float sum, which
    converts an integer the same way. Trace ids only for the calls that have one.
    """

    __slots__ = ("bins", "classes", "durations", "errors", "key_index", "keys",
                 "naming_index", "namings", "traces")

    def __init__(self) -> None:
        self.keys: list[RowKey] = []  # distinct row keys, first seen first
        self.namings: list[str] = []  # distinct namings
        self.key_index = array("L")
        self.naming_index = array("L")
        self.durations = array("d")
        self.errors = bytearray()
        self.classes = bytearray()  # status class index (STATUS_CLASSES < 256)
        self.bins = bytearray()  # histogram bin (BIN_COUNT < 256)
        self.traces: dict[int, str] = {}  # call number -> trace id

    def __len__(self) -> int:
        return len(self.key_index)

    def __getstate__(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Placed) and self.__getstate__() == other.__getstate__()
