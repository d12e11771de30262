"""`topology serve`: exposure rules through click, and one real uvicorn run."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tests.topology.api.helpers import TOKENS
from tests.topology.ingest.delivery_helpers import batch, expected_totals, totals, wait_for
from topology.cli_serve import check_exposure, is_loopback, serve
from topology.settings import Settings
from topology.store.ladybug_store import LadybugStore

START = "from topology.cli_serve import serve; serve(prog_name='topology serve')"


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.1", False), ("example.com", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_refuses_to_bind_beyond_loopback_without_tokens(tmp_path: Path) -> None:
    result = CliRunner().invoke(serve, ["--host", "0.0.0.0", "--data-dir", str(tmp_path)],
                                env={"TOPOLOGY_TOKENS": ""})
    assert result.exit_code == 2
    assert "refusing to serve on 0.0.0.0 without authentication" in result.output
    assert "--allow-unauthenticated" in result.output
    assert not (tmp_path / "topology.lbug").exists()  # refused before opening the store


def test_exposure_allowed_with_tokens_or_flag(settings: Settings,
                                              caplog: pytest.LogCaptureFixture) -> None:
    exposed = settings.with_(host="0.0.0.0")
    check_exposure(exposed.with_(tokens=TOKENS), allow_unauthenticated=False)
    with pytest.raises(click.UsageError):
        check_exposure(exposed, allow_unauthenticated=False)
    with caplog.at_level(logging.WARNING, "topology.serve"):
        check_exposure(exposed, allow_unauthenticated=True)
    assert "WITHOUT authentication" in caplog.text


def test_bad_tokens_are_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(serve, ["--data-dir", str(tmp_path)],
                                env={"TOPOLOGY_TOKENS": "{oops"})
    assert result.exit_code == 2
    assert "TOPOLOGY_TOKENS: not JSON" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status
    except (urllib.error.URLError, ConnectionError):
        return None


def _post(url: str, payload: dict) -> int:
    request = urllib.request.Request(url, json.dumps(payload).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status


def test_real_uvicorn_serves_and_drains_accepted_batches_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "TOPOLOGY_DATA_DIR": str(tmp_path / "data"),
           "TOPOLOGY_PORT": str(port), "TOPOLOGY_TOKENS": "", "TOPOLOGY_REDIS_URL": "",
           "TOPOLOGY_STORE": "embedded"}
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-c", START], env=env,
                                stdout=log_file, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(f"{base}/healthz") == 200 or proc.poll() is not None, 60,
                 "the server to answer /healthz")
        assert proc.poll() is None, log_path.read_text()
        assert _get(f"{base}/readyz") == 200
        batches = [batch(f"s-{n}", 50) for n in range(30)]
        for payload in batches:
            assert _post(f"{base}/v1/events", payload) == 202
        proc.send_signal(signal.SIGTERM)  # right away: the queue still holds batches
        assert proc.wait(timeout=120) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    messages = [line["message"] for line in lines]
    assert "shutdown: every accepted batch written" in messages
    assert any(line.get("path") == "/v1/events" and line.get("status") == 202
               for line in lines)
    settings = Settings.load({}, data_dir=str(tmp_path / "data"))
    with LadybugStore(settings) as store:
        assert totals(store) == expected_totals(*batches)
