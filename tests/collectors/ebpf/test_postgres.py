"""PostgreSQL: statements and answers paired per connection, from recorded real wire bytes.

The conversations in `pgwire` were written and read by psycopg 3 against PostgreSQL 15;
they are fed to the real tracker as kernel events (cut at the capture like the kernel
does), so detection, the session state and the FIFO pairing are all exercised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from collectors.ebpf.protocols.postgres import command_word
from tests.collectors.ebpf import pgwire
from tests.collectors.ebpf import synthetic as s
from tests.collectors.ebpf.test_tracker import CLIENT, IN, MS, OUT, Harness

SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16/"
GSSENC_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x160"
CANCEL = b"\x00\x00\x00\x10\x04\xd2\x16.\x00\x00\x12*\xe5=$\xf3"
TLS_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40)


def steps(recorded: list[tuple[str, bytes]]) -> list[tuple[int, bytes, int]]:
    """Recorded syscalls as tracker steps: direction, captured head, full length."""
    return [(OUT if who == "C" else IN, data, len(data)) for who, data in recorded]


def query_exchange(index: int) -> list[tuple[int, bytes, int]]:
    """One request of the recorded psycopg session and the read that answers it."""
    return steps(pgwire.PSYCOPG_SESSION[index:index + 2])


CONNECT_OK = ("postgresql", "CONNECT", "postgres", False)
CONVERSATIONS = [
    ("psycopg session: simple, extended and prepared statements", 55432,
     steps(pgwire.PSYCOPG_SESSION),
     [CONNECT_OK,
      ("postgresql", "DROP", "postgres", False),
      ("postgresql", "CREATE", "postgres", False),
      ("postgresql", "INSERT", "postgres", False),
      ("postgresql", "SELECT", "postgres", False),
      ("postgresql", "SELECT", "postgres", True),  # missing table
      ("postgresql", "INSERT", "postgres", True),  # duplicate key
      *[("postgresql", "SELECT", "postgres", False)] * 6,  # 4 unnamed, 2 prepared
      ("postgresql", "UPDATE", "postgres", False),  # behind a comment
      ("postgresql", "BEGIN", "postgres", False),
      ("postgresql", "DELETE", "postgres", False),
      ("postgresql", "COMMIT", "postgres", False)], {}),
    ("SCRAM login", 5432, steps(pgwire.SCRAM_LOGIN), [CONNECT_OK], {}),
    ("SCRAM, wrong password", 5432, steps(pgwire.SCRAM_BAD_PASSWORD),
     [("postgresql", "CONNECT", "postgres", True)], {}),
    ("unknown database, no SSLRequest", 5432, steps(pgwire.UNKNOWN_DATABASE),
     [("postgresql", "CONNECT", "nosuchdb", True)], {}),
    ("startup split across writes", 6000,
     [(OUT, pgwire.UNKNOWN_DATABASE[0][1][:20]), (OUT, pgwire.UNKNOWN_DATABASE[0][1][20:]),
      (IN, pgwire.UNKNOWN_DATABASE[1][1])],
     [("postgresql", "CONNECT", "nosuchdb", True)], {}),
    ("GSS encryption refused, then SSL refused", 5432,
     [(OUT, GSSENC_REQUEST), (IN, b"N"), *steps(pgwire.SCRAM_LOGIN)],
     [CONNECT_OK], {}),
    ("SSL accepted: the set-up is seen, nothing after", 5432,
     [(OUT, SSL_REQUEST), (IN, b"S"), (OUT, TLS_HELLO), (IN, b"\x16\x03\x03\x00\x7a\x02")],
     [("postgresql", "CONNECT", None, False)], {}),
    ("joined mid-connection on port 5432", 5432, query_exchange(8) + query_exchange(10),
     [("postgresql", "INSERT", None, False), ("postgresql", "SELECT", None, False)], {}),
    ("mid-connection on another port is plain TCP", 6000, query_exchange(8),
     [("tcp", None, None, None)], {}),
    ("CancelRequest is plain TCP", 5432, [(OUT, CANCEL)], [("tcp", None, None, None)], {}),
    ("binary that starts like a length is plain TCP", 5432,
     [(OUT, b"\x00\x00\x00\x10\x00\x00\x00\x00garbage!"), (IN, b"no")],
     [("tcp", None, None, None)], {}),
    ("unanswered statement expires at close", 5432,
     [*steps(pgwire.SCRAM_LOGIN[:8]), (OUT, b"Q\x00\x00\x00\rSELECT 1\x00", 14)],
     [CONNECT_OK], {"expired_requests": 1}),
]


def summary(calls: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(c["protocol"], c.get("method"), c.get("path"), c.get("error")) for c in calls]


@pytest.mark.parametrize(("case", "port", "steps_", "expected", "losses"), CONVERSATIONS,
                         ids=[c[0] for c in CONVERSATIONS])
def test_conversation(tmp_path: Path, case: str, port: int, steps_: list[Any],
                      expected: list[tuple[Any, ...]], losses: dict[str, int]) -> None:
    h = Harness(tmp_path)
    h.client_conn(port=port)
    h.feed(steps_)
    h.tracker.handle(s.close(CLIENT, 5, ts=1000 * MS))
    assert summary(h.calls) == expected
    assert {k: v for k, v in h.stats.losses().items() if v} == losses
    assert h.tracker.pending_total == 0
    for call in h.calls:
        if call["protocol"] == "postgresql":
            assert call["duration_ms"] > 0
            assert "status" not in call  # a SQLSTATE is not an integer status


def test_latency_spans_the_exchange(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.client_conn(port=5432)
    h.feed(steps(pgwire.SCRAM_LOGIN))
    (connect,) = h.calls
    # SSLRequest (step 1) ... AuthenticationOk after two SASL round trips (step 8)
    assert connect["duration_ms"] == pytest.approx(7.0)
    assert connect["timestamp"] == pytest.approx(1_000.0 + 0.001)


def test_no_literal_or_text_is_shipped(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.client_conn(port=5432)
    h.feed(steps(pgwire.PSYCOPG_SESSION))
    shipped = json.dumps(h.calls)
    for secret in ("secret-literal", "dup", "items", "WHERE", "missing_table", "scram"):
        assert secret not in shipped


COMMAND_WORDS = [
    ("plain", b"SELECT 1\x00", "SELECT"),
    ("lower case", b"insert into t values (1)\x00", "INSERT"),
    ("leading space and comments", b"  -- why\n /* who */ update t set a = 1\x00", "UPDATE"),
    ("parenthesised", b"((SELECT 1))\x00", "SELECT"),
    ("CTE", b"WITH x AS (SELECT 1) SELECT * FROM x\x00", "WITH"),
    ("word outside the catalogue", b"FROBNICATE 'secret'\x00", "OTHER"),
    ("cut in the word", b"SELE", None),
    ("unterminated comment", b"/* still", None),
    ("no word", b"'literal'\x00", None),
]


@pytest.mark.parametrize(("case", "sql", "word"), COMMAND_WORDS, ids=[c[0] for c in COMMAND_WORDS])
def test_command_word(case: str, sql: bytes, word: str | None) -> None:
    assert command_word(sql) == word
