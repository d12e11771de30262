"""One run of the real server: uvicorn on a free port, the map over real HTTP."""

from __future__ import annotations

import socket
import threading
import time

import httpx2
import uvicorn

from tests.topology.api.graphql.support import ADMIN, WINDOW_A, operations
from topology.api.app import create_app
from topology.settings import Settings
from topology.store.base import GraphStore


def test_service_map_over_uvicorn(golden: tuple[Settings, GraphStore]) -> None:
    settings, store = golden
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, store), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        response = httpx2.post(
            f"http://127.0.0.1:{port}/graphql", headers={"Authorization": f"Bearer {ADMIN}"},
            json={"query": operations()["ServiceMap"], "operationName": "ServiceMap",
                  "variables": {"window": WINDOW_A}}, timeout=30)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        answer = response.json()["data"]["serviceMap"]
        assert (len(answer["services"]), len(answer["edges"])) == (9, 9)
    finally:
        server.should_exit = True
        thread.join(30)
