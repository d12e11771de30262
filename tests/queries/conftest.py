"""The shop graph in a real embedded store, loaded once per test module.

Every test of the named queries runs twice: once on the buckets as written, and
once after the retention job rolled them into the pre-aggregated tiers, so each
known answer is also the answer read through the window decomposition.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.queries import shop
from topology.settings import Settings
from topology.store import tiers
from topology.store.base import GraphStore


@pytest.fixture(scope="module", params=["buckets", "tiers"])
def shop_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GraphStore]:
    from topology.store.ladybug_store import LadybugStore

    settings = Settings.load({}, data_dir=str(tmp_path_factory.mktemp("shop")))
    store = LadybugStore(settings)
    store.init_schema()
    shop.load(store)
    if request.param == "tiers":
        report = store.retention(shop.B[1] + 30)
        assert report.tiered > 0
    yield store
    store.close()


@pytest.fixture
def registry() -> Iterator[tiers.SeriesNames]:
    """The process's series-name registry, restored after the test."""
    saved = dict(tiers.SERIES.names), tiers.SERIES.collided
    yield tiers.SERIES
    tiers.SERIES.names.clear()
    tiers.SERIES.names.update(saved[0])
    tiers.SERIES.collided = saved[1]
