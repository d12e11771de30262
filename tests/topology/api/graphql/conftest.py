"""The golden scenario in a real embedded store, served by the real app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from tests.topology.api.graphql import scenario
from tests.topology.api.graphql.support import TOKENS
from topology.api.app import create_app
from topology.settings import Settings
from topology.store.base import GraphStore


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, GraphStore]]:
    from topology.store.ladybug_store import LadybugStore

    settings = Settings.load({}, data_dir=str(tmp_path_factory.mktemp("golden")), tokens=TOKENS)
    store = LadybugStore(settings)
    store.init_schema()
    scenario.load(store, settings)
    yield settings, store
    store.close()


@pytest.fixture(scope="module")
def client(golden: tuple[Settings, GraphStore]) -> Iterator[TestClient]:
    settings, store = golden
    with TestClient(create_app(settings, store)) as test_client:
        yield test_client
