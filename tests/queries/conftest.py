"""The shop graph in a real embedded store, loaded once per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.queries import shop
from topology.settings import Settings
from topology.store.base import GraphStore


@pytest.fixture(scope="module")
def shop_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraphStore]:
    from topology.store.ladybug_store import LadybugStore

    settings = Settings.load({}, data_dir=str(tmp_path_factory.mktemp("shop")))
    store = LadybugStore(settings)
    store.init_schema()
    shop.load(store)
    yield store
    store.close()
