"""Which store errors make the ingest task reopen the embedded store."""

from __future__ import annotations

import pytest

from topology.ingest.tasks import store_exhausted
from topology.settings import Settings
from topology.store.base import StoreError

FULL = ("write failed and was rolled back: Buffer manager exception: Unable to allocate"
        " memory! The buffer pool is full and no memory could be freed!")
CHECKPOINT = ("write failed and was rolled back: Checkpoint failed. The committed data is"
              " durable and will be recovered on restart")


@pytest.mark.parametrize(("store", "message", "reopen"), [
    ("embedded", FULL, True),
    ("embedded", CHECKPOINT, True),
    ("embedded", "write failed and was rolled back: Binder exception: x", False),
    ("neo4j", FULL, False),
])
def test_exhausted_buffer_pool_reopens_the_embedded_store(store: str, message: str,
                                                          reopen: bool) -> None:
    settings = Settings(store=store, neo4j_uri="bolt://localhost:7687")
    assert store_exhausted(StoreError(message), settings) is reopen
