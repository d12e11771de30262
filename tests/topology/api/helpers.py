"""Shared by the API tests: the app on a real store, behind a real ASGI client."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.testclient import TestClient

from topology.api.app import create_app
from topology.api.sinks import IngestSink
from topology.settings import Settings
from topology.store.base import GraphStore

READ = "read-token-0123456789"
INGEST = "ingest-token-0123456789"
ADMIN = "admin-token-0123456789"
TOKENS = json.dumps({
    READ: {"name": "map-ui", "scopes": ["read"], "namespaces": ["shop"]},
    INGEST: {"name": "agent", "scopes": ["ingest"]},
    ADMIN: {"name": "ops", "scopes": ["admin", "read", "ingest"]},
})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def serving(settings: Settings, store: GraphStore,
            ingest: IngestSink | None = None) -> Iterator[TestClient]:
    """The app with its lifespan: leaving the block drains the ingest queue."""
    app = create_app(settings, store, ingest=ingest)
    with TestClient(app, raise_server_exceptions=True) as client:
        yield client


def gzipped(payload: Any) -> bytes:
    return gzip.compress(json.dumps(payload).encode())
