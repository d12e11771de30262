"""Neo4j store behaviour that needs no server: clear errors when it cannot be reached.

The conformance suite covers the rest against a real server when
TOPOLOGY_TEST_NEO4J_URI is set.
"""

from __future__ import annotations

import socket

import pytest

from topology.settings import Settings
from topology.store.base import StoreUnavailable
from topology.store.neo4j_store import Neo4jStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("scheme", ["bolt", "neo4j"])
def test_unreachable_server_is_named(scheme: str) -> None:
    uri = f"{scheme}://127.0.0.1:{free_port()}"
    with pytest.raises(StoreUnavailable, match="unreachable") as caught:
        Neo4jStore(Settings.load({}, store="neo4j", neo4j_uri=uri))
    assert uri in str(caught.value)


BAD_SETTINGS = {
    "no_uri": ({}, "TOPOLOGY_NEO4J_URI is not set"),
    "unknown_scheme": ({"neo4j_uri": "redis://127.0.0.1:6379"},
                       "Neo4j URI 'redis://127.0.0.1:6379' is not usable"),
    "no_scheme": ({"neo4j_uri": "127.0.0.1:7687"}, "Neo4j URI '127.0.0.1:7687' is not usable"),
}


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_unusable_settings_say_why(case: str) -> None:
    overrides, message = BAD_SETTINGS[case]
    with pytest.raises(StoreUnavailable, match=message.replace(".", r"\.")):
        Neo4jStore(Settings.load({}, **overrides))


def test_a_server_that_does_not_speak_bolt_is_reported(redis_server: str) -> None:
    # A real server (Redis) on the port: the Bolt handshake never completes.
    port = redis_server.rsplit(":", 1)[1].split("/")[0]
    uri = f"bolt://127.0.0.1:{port}"
    with pytest.raises(StoreUnavailable, match="handshake") as caught:
        Neo4jStore(Settings.load({}, store="neo4j", neo4j_uri=uri), connect_timeout=0.5)
    assert uri in str(caught.value)
