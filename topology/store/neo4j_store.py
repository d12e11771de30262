"""The Neo4j 5 store, over Bolt with the official `neo4j` driver.

Writes run in managed transactions (`execute_write`): the driver retries
transient errors and deadlocks until `neo4j_write_retry` seconds have passed,
re-running the whole unit of work, which is safe because a failed attempt
rolls back. Rows are merged by key first (topology/store/rows.py) and sorted
by key, so concurrent writers take node locks in the same order and deadlock
each other only rarely. Exactly-once: the batch marker is MERGEd first in the
same transaction (see neo4j_statements.MARK_BATCHES).

Every text sent is in topology/store/neo4j_statements.py (linted by the tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import neo4j
from neo4j import exceptions as nx

from topology.model import HOUR, MAX_EXEMPLARS, Batch
from topology.settings import Settings
from topology.store import neo4j_statements as q
from topology.store import rows
from topology.store.base import (
    GraphStore,
    QueryTimeout,
    RetentionReport,
    StoreError,
    StoreUnavailable,
)
from topology.store.statement import Dialect, Statement

# Seconds to open a Bolt connection and finish its handshake before calling the
# server unreachable (a port that accepts but never answers Bolt waits this long).
CONNECT_TIMEOUT = 5.0
AWAIT_INDEXES_SECONDS = 300

T = TypeVar("T")


class Neo4jStore(GraphStore):
    dialect = Dialect.NEO4J

    def __init__(self, settings: Settings, *, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        """Connect and check the server answers; StoreUnavailable names the URI if not."""
        if not settings.neo4j_uri:
            raise StoreUnavailable("TOPOLOGY_NEO4J_URI is not set: the Neo4j store needs it")
        self.settings = settings
        self.uri = settings.neo4j_uri
        try:
            self._driver = neo4j.GraphDatabase.driver(
                self.uri,
                auth=(settings.neo4j_user, settings.neo4j_password),
                max_transaction_retry_time=settings.neo4j_write_retry,
                connection_timeout=connect_timeout,
                # Also bounds the handshake, and waiting for a pooled connection.
                connection_acquisition_timeout=2 * connect_timeout,
            )
        except (nx.ConfigurationError, ValueError) as exc:
            raise StoreUnavailable(f"Neo4j URI {self.uri!r} is not usable: {exc}") from None
        try:
            self.ping()
        except StoreUnavailable:
            self._driver.close()
            raise

    # -- plumbing ----------------------------------------------------------

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn driver errors into store errors that say where and why."""
        try:
            yield
        except nx.AuthError as exc:
            raise StoreUnavailable(
                f"Neo4j at {self.uri}: authentication failed for user "
                f"{self.settings.neo4j_user!r} ({exc.message})"
            ) from None
        except (nx.ServiceUnavailable, nx.SessionExpired, nx.DatabaseUnavailable) as exc:
            raise StoreUnavailable(f"Neo4j at {self.uri} is unreachable ({what}): {exc}") from None
        except nx.Neo4jError as exc:
            if _timed_out(exc):
                raise QueryTimeout(
                    f"{what} on Neo4j at {self.uri} exceeded "
                    f"{self.settings.query_timeout:g}s"
                ) from None
            raise StoreError(f"{what} on Neo4j at {self.uri} failed: {exc}") from exc
        except nx.DriverError as exc:
            raise StoreError(f"{what} on Neo4j at {self.uri} failed: {exc}") from exc

    def _session(self) -> neo4j.Session:
        return self._driver.session(database=self.settings.neo4j_database)

    def _write(self, what: str, work: Callable[[neo4j.ManagedTransaction], T]) -> T:
        with self._errors(what), self._session() as session:
            return session.execute_write(work)

    @staticmethod
    def _run(tx: neo4j.ManagedTransaction, cypher: q.Cypher, **params: Any) -> list[dict]:
        if set(params) != set(cypher.params):
            raise StoreError(
                f"statement {cypher.name} takes {sorted(cypher.params)}, got {sorted(params)}"
            )
        return [record.data() for record in tx.run(cypher.text, params)]

    # -- interface ---------------------------------------------------------

    def init_schema(self) -> None:
        """Constraints and indexes (IF NOT EXISTS, so idempotent), then wait until online."""
        for cypher in (*q.CONSTRAINTS, *q.INDEXES):
            self._write(cypher.name, lambda tx, c=cypher: self._run(tx, c))
        with self._errors(q.AWAIT_INDEXES.name), self._session() as session:
            session.run(q.AWAIT_INDEXES.text, timeout=AWAIT_INDEXES_SECONDS).consume()

    def apply_many(self, batches: Sequence[Batch], *, now: int | None = None) -> list[bool]:
        if not batches:
            return []
        now = int(time.time()) if now is None else now
        ids = sorted({batch.id for batch in batches})

        def work(tx: neo4j.ManagedTransaction) -> list[bool]:
            marked = self._run(tx, q.MARK_BATCHES, ids=ids, now=now)
            applied = {r["id"] for r in marked if not r["created"]}
            keep = rows.fresh(batches, applied)
            if not any(keep):
                return keep
            services, calls = rows.chosen(batches, keep)
            buckets = rows.merge_buckets(calls)
            service_rows = list(rows.merge_services(services).values())
            bucket_rows = [rows.bucket_row(b) for b in buckets.values()]
            pair_rows = rows.pair_rows(buckets.values())
            if service_rows:
                self._run(tx, q.UPSERT_SERVICES, rows=service_rows)
            if bucket_rows:
                self._run(tx, q.UPSERT_BUCKETS, rows=bucket_rows, max_exemplars=MAX_EXEMPLARS)
            if pair_rows:
                self._run(tx, q.UPSERT_PAIRS, rows=pair_rows)
            return keep

        names = ", ".join(repr(i) for i in ids[:3]) + (", ..." if len(ids) > 3 else "")
        return self._write(f"apply {len(batches)} batch(es) {names}", work)

    def read(
        self, statement: Statement, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        query = neo4j.Query(statement.text(self.dialect), timeout=self.settings.query_timeout)

        def work(tx: neo4j.ManagedTransaction) -> list[dict[str, Any]]:
            # Raised from inside the unit of work so the driver does not retry it.
            try:
                return [record.data() for record in tx.run(query, dict(params or {}))]
            except nx.Neo4jError as exc:
                if _timed_out(exc):
                    raise QueryTimeout(
                        f"query {statement.name} on Neo4j at {self.uri} exceeded "
                        f"{self.settings.query_timeout:g}s"
                    ) from None
                raise

        with self._errors(f"query {statement.name}"), self._session() as session:
            return session.execute_read(work)

    def stats(self) -> dict[str, int]:
        with self._errors(q.STATS.name), self._session() as session:
            record = session.execute_read(
                lambda tx: self._run(tx, q.STATS, hour_width=HOUR)[0]
            )
        return {name: int(value) for name, value in record.items()}

    def retention(self, now: int) -> RetentionReport:
        minute_cutoff = int(now - self.settings.minute_retention)
        hour_cutoff = int(now - self.settings.hour_retention)
        marker_cutoff = int(now - self.settings.batch_marker_retention)
        rolled = 0
        while (first := self._oldest_ended_minute(minute_cutoff)) is not None:
            rolled += self._roll_up_hour(first - first % HOUR, minute_cutoff)

        def expire(tx: neo4j.ManagedTransaction) -> list[int]:
            return [
                self._run(tx, cypher, **params)[0]["n"]
                for cypher, params in (
                    (q.EXPIRED_HOURS_DELETE, {"hour_width": HOUR, "cutoff": hour_cutoff}),
                    (q.EXPIRED_PAIRS_DELETE, {"cutoff": hour_cutoff}),
                    (q.EXPIRED_SERVICES_DELETE, {"cutoff": hour_cutoff}),
                    (q.EXPIRED_MARKERS_DELETE, {"cutoff": marker_cutoff}),
                )
            ]

        return RetentionReport(rolled, *self._write("retention expiry", expire))

    def _oldest_ended_minute(self, cutoff: int) -> int | None:
        with self._errors(q.OLDEST_ENDED_MINUTE.name), self._session() as session:
            first = session.execute_read(
                lambda tx: self._run(tx, q.OLDEST_ENDED_MINUTE, hour_width=HOUR, cutoff=cutoff)
            )[0]["first"]
        return None if first is None else int(first)

    def _roll_up_hour(self, hour: int, cutoff: int) -> int:
        """Add the ended minute buckets of one hour into hour buckets, delete them; atomic."""
        params = {"hour_width": HOUR, "hour": hour, "cutoff": cutoff}

        def work(tx: neo4j.ManagedTransaction) -> int:
            minutes = self._run(tx, q.MINUTES_ENDED_IN_HOUR, **params)
            hours = rows.roll_up(minutes, HOUR)
            if hours:
                self._run(tx, q.UPSERT_BUCKETS, rows=hours, max_exemplars=MAX_EXEMPLARS)
            return int(self._run(tx, q.MINUTES_ENDED_IN_HOUR_DELETE, **params)[0]["n"])

        return self._write(f"roll up hour {hour}", work)

    def ping(self) -> None:
        """One auto-commit round trip (no retries, so an outage is reported at once)."""
        try:
            with self._session() as session:
                session.run(q.PING.text).consume()
        except nx.AuthError as exc:
            raise StoreUnavailable(
                f"Neo4j at {self.uri}: authentication failed for user "
                f"{self.settings.neo4j_user!r} ({exc.message})"
            ) from None
        except (nx.Neo4jError, nx.DriverError, OSError) as exc:
            raise StoreUnavailable(f"Neo4j at {self.uri} is unreachable: {exc}") from None

    def close(self) -> None:
        self._driver.close()


def _timed_out(exc: nx.Neo4jError) -> bool:
    return "TransactionTimedOut" in (exc.code or "")
