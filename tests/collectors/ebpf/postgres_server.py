"""A throw-away PostgreSQL cluster for the live tests (Debian's postgresql package).

PostgreSQL refuses to run as root, so the cluster lives in a fresh temporary
directory owned by the `postgres` user (or `nobody`) and every server command
runs as that user through `runuser`. Trust authentication on 127.0.0.1 only,
no fsync; the directory is removed afterwards.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.collectors.ebpf import live


@dataclass(frozen=True)
class PostgresServer:
    port: int
    user: str = "postgres"  # the superuser role created by initdb


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _owner() -> pwd.struct_passwd | None:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None


def problem() -> str | None:
    """Why a cluster cannot be started here, or None."""
    if _binary("initdb") is None or _binary("pg_ctl") is None:
        return "PostgreSQL server binaries not found (apt-get install postgresql)"
    if os.geteuid() == 0 and (_owner() is None or shutil.which("runuser") is None):
        return "no unprivileged user (postgres or nobody) and runuser to run PostgreSQL as"
    return None


@contextmanager
def running() -> Iterator[PostgresServer]:
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    assert initdb and pg_ctl, problem()
    base = tempfile.mkdtemp(prefix="topology-pg-")
    prefix: list[str] = []
    if os.geteuid() == 0:
        owner = _owner()
        assert owner is not None, problem()
        os.chown(base, owner.pw_uid, owner.pw_gid)
        prefix = ["runuser", "-u", owner.pw_name, "--"]
    data = os.path.join(base, "data")
    port = live.free_port()
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    try:
        live.run([*prefix, initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8"], cwd=base)
        live.run([*prefix, pg_ctl, "-D", data, "-o", options, "-l",
                  os.path.join(base, "server.log"), "-w", "-t", "30", "start"], cwd=base)
        try:
            live.wait_for_port(port)
            yield PostgresServer(port)
        finally:
            subprocess.run([*prefix, pg_ctl, "-D", data, "-m", "fast", "-w", "stop"],
                           capture_output=True, timeout=60, check=False, cwd=base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
