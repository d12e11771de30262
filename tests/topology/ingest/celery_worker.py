"""A real `topology worker` in a subprocess, for the delivery fault tests."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.topology.ingest.delivery_helpers import wait_for

START = "from topology.cli_worker import worker; worker(prog_name='topology worker')"


class WorkerProcess:
    """One worker: its own session (so SIGKILL takes any pool process with it) and log file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.log.write_text("")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", START, "--logfile", str(self.log), "--loglevel", "info"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(lambda: "ready." in self.text() or self.proc.poll() is not None, 60,
                 f"the worker to be ready (log {self.log.name})")
        assert self.proc.poll() is None, f"worker exited at start:\n{self.text()}"
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.text()))

    def wait_log(self, pattern: str, times: int = 1, timeout: float = 60) -> None:
        wait_for(lambda: self.count(pattern) >= times, timeout,
                 f"{times}x {pattern!r} in the worker log:\n{self.text()[-3000:]}")

    def pool_pids(self) -> list[int]:
        assert self.proc is not None
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.proc.pid:
                children.append(int(entry.name))
        return children

    def kill_all(self) -> None:
        """SIGKILL the whole worker: main process and pool, as a lost node would."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        """Warm shutdown; SIGKILL if it has not exited within a minute."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # a pool process left behind
