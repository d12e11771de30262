"""Agent -> the real API (`POST /v1/events`, embedded store) -> `serviceMap` shows the edge."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors.ebpf.agent import Agent, AgentConfig
from collectors.ebpf.sinks import HttpSink
from tests.collectors.ebpf import live

pytestmark = pytest.mark.ebpf

MAP_QUERY = """{ serviceMap(window: {last: "15m"}) {
  services { id name kind }
  edges { client server protocols stats { requests errors p50Ms } topPaths { path } }
} }"""


@pytest.fixture
def api(tmp_path: Path) -> Iterator[str]:
    live.require_ebpf()
    import uvicorn

    from topology.api.app import create_app
    from topology.settings import Settings

    port = live.free_port()
    settings = Settings.load(environ={}, data_dir=str(tmp_path / "data"), port=port)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    live.wait_for_port(port)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def _service_map(api: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{api}/graphql", data=json.dumps({"query": MAP_QUERY})
                                     .encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body
    return body["data"]["serviceMap"]


def test_agent_to_service_map(api: str, http_server: int) -> None:
    agent = Agent(AgentConfig(flush_interval=0.2), HttpSink(api))
    agent.start()
    agent.run_in_thread()
    try:
        base = f"http://127.0.0.1:{http_server}"
        live.run(["curl", "-s", "-o", "/dev/null", "-o", "/dev/null", f"{base}/e2e/a",
                  f"{base}/"])
        host = socket.gethostname()
        client = f"process:{host}/curl"
        deadline = time.monotonic() + 60
        edges: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            answer = _service_map(api)
            edges = [e for e in answer["edges"] if e["client"] == client
                     and e["server"].startswith(f"process:{host}/python3")]
            if edges and edges[0]["stats"]["requests"] >= 2:
                break
            time.sleep(0.5)
    finally:
        agent.stop()
    assert edges, f"no curl -> python3 edge in {answer}"
    (edge,) = edges
    assert "http" in edge["protocols"]
    assert edge["stats"]["requests"] >= 2
    assert edge["stats"]["p50Ms"] is not None and edge["stats"]["p50Ms"] > 0
    assert "/e2e/a" in {p["path"] for p in edge["topPaths"]}
    assert agent.stats.sent_batches >= 1
    names = {s["id"]: s for s in answer["services"]}
    assert names[client]["kind"] == "Process"
