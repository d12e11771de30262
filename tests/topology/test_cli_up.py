"""`topology up` end to end: the agent sees real HTTP traffic, the API shows it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.collectors.ebpf import live

MAP_QUERY = (Path(__file__).parents[2] / "graphql" / "operations" / "map.graphql").read_text()


def graphql(url: str, variables: dict) -> dict:
    body = json.dumps({"query": MAP_QUERY, "operationName": "ServiceMap",
                       "variables": variables}).encode()
    request = urllib.request.Request(f"{url}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def topology_up(tmp_path: Path) -> Iterator[str]:
    live.require_ebpf()
    port = live.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "topology.cli", "up", "--data-dir", str(tmp_path), "--port",
         str(port)],
        env={**os.environ, "TOPOLOGY_HOST": "127.0.0.1"},
    )
    live.wait_for_port(port, timeout=120)
    yield f"http://127.0.0.1:{port}"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 0


def test_up_maps_this_machines_http_traffic(topology_up: str, tmp_path: Path) -> None:
    port = live.free_port()
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "up-e2e.txt").write_text("hello")
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path / "web", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        live.wait_for_port(port)
        curl = shutil.which("curl")
        assert curl, "curl is installed by scripts/setup-ebpf.sh"
        deadline = time.monotonic() + 90
        edge = None
        while edge is None:
            assert time.monotonic() < deadline, "no curl -> http.server edge in the map"
            subprocess.run([curl, "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/up-e2e.txt"],
                           check=True)
            answer = graphql(topology_up, {"window": {"last": "15m"}, "filter": "up-e2e"})
            assert "errors" not in answer, answer
            names = {s["id"]: s["name"] for s in answer["data"]["serviceMap"]["services"]}
            edge = next((e for e in answer["data"]["serviceMap"]["edges"]
                         if names.get(e["client"]) == "curl"), None)
            if edge is None:
                time.sleep(1)
        assert "http" in edge["protocols"]
        assert edge["stats"]["requests"] >= 1 and edge["stats"]["p50Ms"] > 0
        assert [p["path"] for p in edge["topPaths"]] == ["/up-e2e.txt"]
    finally:
        server.terminate()
        server.wait()
