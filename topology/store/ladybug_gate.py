"""Keeps the embedded store's reads out of its commits, which may checkpoint.

LadybugDB 0.22 checkpoints while other connections read (its "non-blocking"
checkpoint: readers go on through MVCC snapshots). Measured here, that loses
committed writes: a writer adding to 8,000 bucket rows per transaction, with
one other thread reading batch markers meanwhile, had rows missing or
counted twice within one to three simulated minutes, and the wrong counts
were in the file when it was opened again. With the reads kept out of every
checkpoint (CHECKPOINT run alone, or this gate) the same load was exact, and
so were `topology worker` runs of 60 and 540 simulated minutes that had lost
writes before (docs/storage.md, docs/delivery.md).

A COMMIT checkpoints when the write-ahead log has grown past LadybugDB's
threshold, so every COMMIT (and every statement that commits on its own)
holds the gate `alone`, and every read holds it `shared`. A commit that
waits keeps new reads out, so a stream of reads cannot starve the writer;
a thread that already reads (a snapshot's reads) reads on without waiting.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class CheckpointGate:
    """Shared by reads, held alone by anything that may checkpoint."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._alone = False
        self._waiting = 0  # commits waiting for the reads to end
        self._local = threading.local()

    @contextmanager
    def shared(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            with self._cond:
                while self._alone or self._waiting:
                    self._cond.wait()
                self._readers += 1
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                with self._cond:
                    self._readers -= 1
                    if not self._readers:
                        self._cond.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        if getattr(self._local, "depth", 0):
            raise RuntimeError("a thread that is reading the embedded store cannot commit "
                               "(it would wait for its own read)")
        with self._cond:
            self._waiting += 1
            try:
                while self._alone or self._readers:
                    self._cond.wait()
            except BaseException:
                self._waiting -= 1
                self._cond.notify_all()  # the reads it kept waiting
                raise
            self._waiting -= 1
            self._alone = True
        try:
            yield
        finally:
            with self._cond:
                self._alone = False
                self._cond.notify_all()
