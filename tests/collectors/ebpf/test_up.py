"""`topology up`: serve and collect in one process; real traffic shows in its serviceMap."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.collectors.ebpf import live
from tests.collectors.ebpf.test_end_to_end import _service_map

pytestmark = pytest.mark.ebpf

UP = "from collectors.cli_up import command; command(prog_name='topology up')"


def test_up_serves_and_collects(tmp_path: Path, http_server: int) -> None:
    live.require_ebpf()
    port = live.free_port()
    log = (tmp_path / "up.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", UP, "--data-dir", str(tmp_path / "data"), "--port", str(port),
         "--metrics-port", "0"], stdout=log, stderr=subprocess.STDOUT)
    try:
        live.wait_for_port(port, timeout=60)
        api = f"http://127.0.0.1:{port}"
        client = f"process:{socket.gethostname()}/curl"
        edges: list[dict[str, Any]] = []
        deadline = time.monotonic() + 90
        while not edges and time.monotonic() < deadline:
            # The agent may still be compiling: keep calling until its edge shows up.
            live.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{http_server}/up"])
            edges = [e for e in _service_map(api)["edges"] if e["client"] == client]
            time.sleep(0.5)
        assert edges, (tmp_path / "up.log").read_text()
        assert "http" in edges[0]["protocols"]
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        log.close()
    assert code == 0, (tmp_path / "up.log").read_text()
