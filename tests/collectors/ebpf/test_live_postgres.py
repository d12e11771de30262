"""The real agent against a real PostgreSQL server driven by psycopg 3 (root + BCC)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.collectors.ebpf import live, postgres_server

pytestmark = pytest.mark.ebpf
DATABASE = "shop"


@pytest.fixture(scope="module")
def postgres() -> Iterator[postgres_server.PostgresServer]:
    live.require_ebpf()
    problem = postgres_server.problem()
    try:
        import psycopg
    except ImportError:
        problem = problem or "psycopg is not installed (pip install 'psycopg[binary]')"
    if problem:
        live.unavailable(problem)
    with postgres_server.running() as server:
        # Set up from this process: the agent never traces its own process.
        with psycopg.connect(host="127.0.0.1", port=server.port, user=server.user,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        yield server


def _workload(peer: dict[str, Any]) -> str | None:
    workload = peer.get("workload")
    return workload["name"] if workload else None


def test_psycopg_statements(agent: live.RunningAgent,
                            postgres: postgres_server.PostgresServer) -> None:
    live.python(
        "import psycopg\n"
        f"with psycopg.connect(host='127.0.0.1', port={postgres.port}, user='postgres',\n"
        f"                     dbname='{DATABASE}', autocommit=True) as conn:\n"
        "    conn.execute('CREATE TABLE orders (id int PRIMARY KEY, note text)')\n"
        "    conn.execute('INSERT INTO orders VALUES (%s, %s)', (7, 'secret-note'))\n"
        "    assert conn.execute('SELECT note FROM orders WHERE id = %s', (7,)).fetchone()\n"
        "    try:\n"
        "        conn.execute('SELECT * FROM no_such_table')\n"
        "    except psycopg.errors.UndefinedTable:\n"
        "        pass\n"
        "    conn.execute('DELETE FROM orders WHERE id = %s', (7,))\n")

    def mine(call: dict[str, Any]) -> bool:
        return (call["protocol"] == "postgresql" and call["side"] == "client"
                and call["destination"].get("port") == postgres.port)

    agent.wait_for("calls", lambda c: mine(c) and c["method"] == "DELETE")
    calls = [c for c in agent.items("calls") if mine(c)]
    assert sorted((c["method"], c["error"]) for c in calls) == [
        ("CONNECT", False), ("CREATE", False), ("DELETE", False), ("INSERT", False),
        ("SELECT", False), ("SELECT", True)]
    for call in calls:
        assert call["path"] == DATABASE
        assert _workload(call["source"]).startswith("python")
        assert _workload(call["destination"]) == "postgres"
        assert call["duration_ms"] > 0
        assert "secret-note" not in str(call) and "orders" not in str(call)
    # A second client, refused: an error at connection set-up. Once its call is in,
    # the first connection's close has been handled too (events come in order).
    live.python(
        "import psycopg\n"
        "try:\n"
        f"    psycopg.connect(host='127.0.0.1', port={postgres.port}, user='postgres',\n"
        "                    dbname='nosuchdb')\n"
        "except psycopg.OperationalError:\n"
        "    pass\n")
    refused = agent.wait_for("calls", lambda c: mine(c) and c.get("path") == "nosuchdb")
    assert [(c["method"], c["error"]) for c in refused] == [("CONNECT", True)]
    # Both connections were parsed: no plain tcp edge for them as well.
    assert not [c for c in agent.items("calls") if c["protocol"] == "tcp"
                and c["destination"].get("port") == postgres.port]
