"""The embedded store: LadybugDB in a single file under the data directory.

One process owns the file for writing (LadybugDB takes a file lock); a second
one gets StoreLocked naming the file. Writes are serialised by a lock and run
in one explicit transaction each. New buckets are created (COPY for large
sets); existing ones, found by id (a hash of the key), get the incoming counters
added in the database (`ladybug_buckets`). Services and pairs are compared with
what the store knows it wrote and only changes are written (`ladybug_pairs`);
relationship MERGE, which LadybugDB runs slowly, is never used (docs/storage.md
has the figures).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ladybug

from topology.model import HOUR, Batch, CallBucket
from topology.settings import Settings
from topology.store import ladybug_buckets, ladybug_migrate, ladybug_pairs, rows, tiers
from topology.store import ladybug_schema as q
from topology.store.base import (
    GraphStore,
    QueryTimeout,
    Reader,
    RetentionReport,
    StoreError,
    StoreLocked,
    StoreUnavailable,
)
from topology.store.changes import Changes
from topology.store.ladybug_gate import CheckpointGate
from topology.store.ladybug_rows import Conn, Staging, Writer, records
from topology.store.statement import Dialect, Statement
from topology.store.tiers import TierRange, Tiers

if TYPE_CHECKING:  # only readers make arrow tables: a worker never imports pyarrow
    import pyarrow as pa

log = logging.getLogger(__name__)

_TIER_STATE = Statement.same("tier_state", tiers.STATE)
# Below this buffer pool LadybugDB 0.22 was seen to crash: with 64 MiB a process
# writing 10,000 bucket rows a minute segfaulted when CallBucket passed one node
# group (131,072 rows), store only or in the worker; 128 MiB ran nine hours of
# data (docs/storage.md, "Buffer pool size"). Smaller pools are allowed (tests use
# them to exhaust the pool on purpose) but warned about.
SMALLEST_SAFE_POOL_MB = 128
# Files opened for writing by this process. LadybugDB's file lock keeps other
# processes out but lets a second Database in the same process open the file;
# the writer's in-memory state (stored services and pairs, tier state, reader
# caches) assumes it is the file's only writer, so a second one is refused here.
_WRITERS: set[Path] = set()
_WRITERS_LOCK = threading.Lock()


class LadybugStore(GraphStore):
    dialect = Dialect.LADYBUG

    def __init__(self, settings: Settings, *, read_only: bool = False,
                 track_changes: bool = True) -> None:
        self.settings = settings
        self.path: Path = settings.embedded_path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._owned: Path | None = None if read_only else self._own(self.path.resolve())
        pool_mb = settings.embedded_buffer_pool_mb
        if 0 < pool_mb < SMALLEST_SAFE_POOL_MB:
            log.warning(
                "TOPOLOGY_EMBEDDED_BUFFER_POOL_MB=%d is below %d: with 64 MiB LadybugDB crashed"
                " (segfault) once the minute buckets passed 131,072 rows; use at least %d, or 0"
                " for LadybugDB's default (docs/storage.md, \"Buffer pool size\")",
                pool_mb, SMALLEST_SAFE_POOL_MB, SMALLEST_SAFE_POOL_MB)
        self._read_only = read_only
        # where the writer hands LadybugDB its rows (ladybug_rows.py)
        self._staging: Staging | None = None if read_only else self._staging_dir()
        self._db = self._open_database()
        self._write_lock = threading.Lock()
        self._gate = CheckpointGate()  # reads kept out of commits (ladybug_gate)
        # the writer's own thread count (TOPOLOGY_EMBEDDED_WRITER_THREADS); readers keep
        # LadybugDB's default, every core
        self._writer = ladybug.Connection(self._db, num_threads=settings.embedded_writer_threads)
        self._local = threading.local()
        self._readers: list[ladybug.Connection] = []
        self._closed = False
        self.tiers = Tiers(int(settings.bucket_width))
        # in-process reader caches (queries/health.py, queries/adjacency.py) follow the
        # writes; a process without such reads (`topology worker`) tracks nothing
        self.changes = (Changes(int(settings.bucket_width))
                        if track_changes and not read_only else None)
        self._known = ladybug_pairs.Known()
        self._created = 0  # rows created since the database was opened (reopen when due)
        try:
            self._check_layout()
        except StoreError:
            self.close()
            raise

    def _own(self, path: Path) -> Path:
        with _WRITERS_LOCK:
            if path in _WRITERS:
                raise StoreLocked(
                    f"embedded store {self.path} is already open for writing in this process "
                    "(one store object owns a file: share it, or close it first)")
            _WRITERS.add(path)
        return path

    def _disown(self) -> None:
        if self._owned is not None:
            with _WRITERS_LOCK:
                _WRITERS.discard(self._owned)
            self._owned = None

    # -- connections -------------------------------------------------------

    def _open_database(self) -> ladybug.Database:
        try:
            return ladybug.Database(
                str(self.path), read_only=self._read_only,
                buffer_pool_size=self.settings.embedded_buffer_pool_mb * 1024 * 1024,
            )
        except RuntimeError as exc:
            self._disown()
            if "lock" in str(exc).lower():
                raise StoreLocked(
                    f"embedded store {self.path} is opened for writing by another process "
                    "(only one process may own it: stop the other `topology` process or point "
                    "TOPOLOGY_DATA_DIR elsewhere)"
                ) from None
            raise StoreUnavailable(f"cannot open embedded store {self.path}: {exc}") from None

    def _reopen_when_due(self) -> None:
        """Close the database and open it again once TOPOLOGY_EMBEDDED_REOPEN_ROWS rows
        (buckets, pairs, services) were created since it was opened (the caller holds the
        write lock).

        LadybugDB keeps every page it read or wrote in its buffer pool until the pool
        is full, so a writer's pool fills with the pages of data written long ago:
        about 0.6 MB for every minute of 10,000 new buckets, up to the pool's cap. A
        write needs only the newest pages (bucket ids are placed for that,
        `ladybug_ids`), and closing the database is the one way LadybugDB 0.22 gives
        the others back (docs/storage.md, "Where the buffer pool's pages go"). Reads
        are kept out meanwhile; what this object caches stays true (the data is the
        same), and reading threads open new connections."""
        limit = self.settings.embedded_reopen_rows
        if not limit or self._created < limit:
            return
        started = time.monotonic()
        with self._gate.alone():  # closing checkpoints; no read may use a closing connection
            self._close_database()
            self._readers = []
            self._local = threading.local()
            try:
                self._db = self._open_database()
            except StoreError:
                self._closed = True
                raise
            self._writer = ladybug.Connection(
                self._db, num_threads=self.settings.embedded_writer_threads)
        log.info("reopened embedded store %s after %d new rows in %.2fs, giving back "
                 "the pages LadybugDB had cached (TOPOLOGY_EMBEDDED_REOPEN_ROWS=%d)",
                 self.path, self._created, time.monotonic() - started, limit)
        self._created = 0

    def _reader(self) -> ladybug.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = ladybug.Connection(self._db)
            conn.set_query_timeout(int(self.settings.query_timeout * 1000))
            self._local.conn = conn
            self._readers.append(conn)
        return conn

    @staticmethod
    def _rows(conn: Conn, text: str, params: Mapping[str, Any]) -> list[dict]:
        return records(conn.execute(text, dict(params)))

    # -- interface ---------------------------------------------------------

    def _check_layout(self) -> None:
        """Refuse a file whose CallBucket table has an older layout: the list columns
        (hist, status) of the first one, or the STRING primary key `key` without the
        INT64 `id` of the second; every statement of this version finds buckets by id
        and reads the scalar counters (h0.., s0..). A file opened for writing loses
        its stored bucket keys, made of other columns since, and its buckets get
        placed ids if they were keyed by the key's hash alone (`ladybug_migrate`). Pair
        bounds kept on the CALLS relationships (the layout before CallPair) are moved
        into CallPair nodes when the file is opened for writing, refused otherwise."""
        conn = self._writer
        tables = {row[1] for row in conn.execute(q.SHOW_TABLES).get_all()}
        if "CallBucket" in tables:
            columns = self._check_buckets(conn)
            if not self._read_only and ladybug_migrate.STORED_KEY in columns:
                with self._gate.alone():  # the DDL commits on its own
                    ladybug_migrate.drop_bucket_key(conn, self.path)
            if not self._read_only and ladybug_migrate.bucket_ids_unplaced(conn):
                with self._gate.alone():  # its transactions commit
                    ladybug_migrate.place_bucket_ids(self._writes(conn), self.path)
        fields = ladybug_migrate.pairs_on_relationships(conn, tables)
        if fields:
            if self._read_only:
                raise ladybug_migrate.refuse_read_only(self.path)
            with self._gate.alone():  # its transaction commits
                ladybug_migrate.move_pair_bounds(self._writes(conn), self.path, fields)

    def _check_buckets(self, conn: ladybug.Connection) -> set[str]:
        """CallBucket's columns, once the layout is known to be one this version reads."""
        info = conn.execute(q.BUCKET_TABLE_INFO).get_all()
        columns = {row[1] for row in info}
        primary = [row[1] for row in info if row[4]]
        missing = sorted({name for name, _ in q.BUCKET_COLUMNS} - columns)
        if missing or primary != ["id"]:
            raise StoreError(
                f"embedded store {self.path} was written by an older version: its "
                f"CallBucket table lacks {', '.join(missing[:4]) or 'nothing'}"
                f"{' ...' if len(missing) > 4 else ''} and is keyed by "
                f"{', '.join(primary) or 'nothing'} (this version keys buckets by an INT64 "
                "id, a hash of the key, and keeps histogram and status counts in scalar "
                "columns). Move the file away (or point TOPOLOGY_DATA_DIR elsewhere) to "
                "start an empty store; its data cannot be read by this version"
            )
        return columns

    def init_schema(self) -> None:
        with self._write_lock:
            self._check_layout()
            for statement in (*q.SCHEMA, *tiers.SCHEMA):
                with self._gate.alone():  # each commits on its own
                    self._writer.execute(statement)

    def read(
        self, statement: Statement, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        self._check_open()
        try:
            with self._gate.shared():
                return self._rows(self._reader(), statement.text(self.dialect), params or {})
        except RuntimeError as exc:
            raise self._read_error(statement, exc) from exc

    def read_arrow(
        self, statement: Statement, params: Mapping[str, Any] | None = None
    ) -> pa.Table:
        self._check_open()
        try:
            with self._gate.shared():
                result = self._reader().execute(statement.text(self.dialect), dict(params or {}))
                return result.get_as_arrow(0)
        except RuntimeError as exc:
            raise self._read_error(statement, exc) from exc

    @contextmanager
    def snapshot(self) -> Iterator[Reader]:
        """Reads in one read-only transaction of this thread's connection."""
        self._check_open()
        with self._gate.shared():
            conn = self._reader()
            conn.execute("BEGIN TRANSACTION READ ONLY")
            try:
                yield self.read
            except BaseException:
                with suppress(RuntimeError):  # a failed read may have ended the transaction
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def tier_range(self, read: Reader | None = None) -> TierRange | None:
        if not self.tiers.levels:
            return None
        found = (read or self.read)(_TIER_STATE, {})
        if not found:
            return None
        return TierRange(found[0]["low"], found[0]["high"], self.tiers.levels)

    def _read_error(self, statement: Statement, exc: RuntimeError) -> StoreError:
        if str(exc).startswith("Interrupted"):
            return QueryTimeout(f"query {statement.name} exceeded {self.settings.query_timeout:g}s")
        return StoreError(f"query {statement.name} failed: {exc}")

    def apply_many(self, batches: Sequence[Batch], *, now: int | None = None) -> list[bool]:
        self._check_open()
        if not batches:
            return []
        now = int(time.time()) if now is None else now
        with self._write_lock:
            self._reopen_when_due()
            keep, merged, pairs = self._apply(batches, now)
        if self.changes is not None and merged is not None:  # after commit: readers' caches
            self.changes.applied(batches, keep, merged, pairs)
        return keep

    def _apply(self, batches: Sequence[Batch], now: int) -> tuple[
            list[bool], dict[str, CallBucket] | None, dict[tuple[str, str], list]]:
        """The batches not applied before, in one transaction: which were, their merged
        buckets (None when none was) and pairs."""
        with self._transaction() as conn:
            ids = [b.id for b in batches]
            applied = {r["id"] for r in self._rows(conn, q.BATCHES_SEEN, {"ids": ids})}
            keep = rows.fresh(batches, applied)
            if not any(keep):
                return keep, None, {}
            services, calls = rows.chosen(batches, keep)
            merged = rows.merge_buckets(calls, ordered=False)
            buckets = list(merged.values())
            made = ladybug_pairs.upsert_services(conn, ladybug_pairs.service_states(
                ladybug_pairs.unsettled(services, self._known), self._known), self._known)
            self.tiers.absorb(conn, buckets)
            created = ladybug_buckets.upsert(conn, buckets, list(merged))
            pairs = ladybug_pairs.pairs(buckets)
            made += ladybug_pairs.upsert_pairs(conn, pairs, self._known)
            marks = sorted({b.id for b, ok in zip(batches, keep, strict=True) if ok})
            conn.execute(q.BATCHES_MARK, {"ids": marks, "now": now})
        self._created += created + made
        return keep, merged, pairs

    def stats(self) -> dict[str, int]:
        with self._gate.shared():
            conn = self._reader()
            return {name: self._rows(conn, text, {})[0]["n"] for name, text in q.STATS.items()}

    def retention(self, now: int) -> RetentionReport:
        self._check_open()
        minute_cutoff = int(now - self.settings.minute_retention)
        hour_cutoff = int(now - self.settings.hour_retention)
        rolled = 0
        self._expire_tiers(minute_cutoff)
        while True:
            with self._gate.shared():
                oldest = self._rows(self._reader(), q.OLDEST_ENDED_MINUTE,
                                    {"cutoff": minute_cutoff})
            first = oldest[0]["first"] if oldest else None
            if first is None:
                break
            rolled += self._roll_up_hour(first - first % HOUR, minute_cutoff)
        tiered = self._roll_tiers(now)
        with self._write_lock, self._transaction() as conn:
            conn.execute(q.EXPIRED_CALLS_DELETE, {"cutoff": hour_cutoff})
            counts = [
                self._rows(conn, text, {"cutoff": cutoff})[0]["n"]
                for text, cutoff in (
                    (q.EXPIRED_HOURS_DELETE, hour_cutoff),
                    (q.EXPIRED_PAIRS_DELETE, hour_cutoff),
                    (q.EXPIRED_SERVICES_DELETE, hour_cutoff),
                    (q.EXPIRED_MARKERS_DELETE,
                     int(now - self.settings.batch_marker_retention)),
                )
            ]
            self._known.clear()  # services and pairs may have been deleted
        if self.changes is not None:  # after commit: readers' caches
            self.changes.expired(max(minute_cutoff, hour_cutoff), pairs_deleted=counts[1] > 0)
        return RetentionReport(rolled, *counts, tiered=tiered)

    def _expire_tiers(self, minute_cutoff: int) -> None:
        """Before minutes are folded into hours: tiers must never cover a folded minute,
        or a window would count it in its hour bucket and in a tier row."""
        with self._write_lock, self._transaction() as conn:
            self.tiers.start(conn, minute_cutoff)
            self.tiers.expire(conn, minute_cutoff)

    def _roll_tiers(self, now: int) -> int:
        """Roll the buckets that started before the current one into the tiers, an
        hour per transaction."""
        tiered = 0
        while True:
            with self._write_lock, self._transaction() as conn:
                if not self.tiers.pending(conn, now):
                    return tiered
                tiered += self.tiers.roll(conn, now)

    def ping(self) -> None:
        self._check_open()
        try:
            with self._gate.shared():
                self._reader().execute("RETURN 1").get_all()
        except RuntimeError as exc:
            raise StoreUnavailable(f"embedded store {self.path}: {exc}") from None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with self._write_lock, self._gate.alone():  # closing checkpoints
                self._close_database()
            if self._staging is not None:
                self._staging.remove()
            self._disown()

    def _close_database(self) -> None:
        """Close every connection, then the database (the caller holds the gate alone)."""
        for conn in [*self._readers, self._writer]:
            conn.close()
        self._db.close()

    # -- writing -----------------------------------------------------------

    def _staging_dir(self) -> Staging:
        try:
            return Staging(self.path.parent / f".{self.path.name}.rows")
        except ValueError as exc:
            self._disown()
            raise StoreError(str(exc)) from exc

    def _writes(self, conn: ladybug.Connection) -> Writer:
        if self._staging is None:
            raise StoreError(f"embedded store {self.path} is open read-only: no writes")
        return Writer(conn, self._staging)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable(f"embedded store {self.path} is closed")

    def _transaction(self) -> _Transaction:
        return _Transaction(self._writes(self._writer), self._gate, self._forget,
                            self._commit_uncertain)

    def _forget(self) -> None:
        """After a failed write transaction: what was cached may not have been stored."""
        self.tiers.forget()
        self._known.clear()

    def _commit_uncertain(self) -> None:
        """After a COMMIT that raised: the write may have been applied all the same, so
        the readers' caches must not trust anything they hold."""
        self._forget()
        if self.changes is not None:
            self.changes.uncertain()

    def _roll_up_hour(self, hour: int, cutoff: int) -> int:
        """Fold the ended minute buckets of one hour into hour buckets, atomically."""
        params = {"hour": hour, "cutoff": cutoff}
        with self._write_lock, self._transaction() as conn:
            minutes = self._rows(conn, q.MINUTES_ENDED_IN_HOUR, params)
            hours = rows.merge_buckets(ladybug_buckets.from_rows(minutes, HOUR))
            created = ladybug_buckets.upsert(conn, list(hours.values()), list(hours))
            conn.execute(q.MINUTES_ENDED_IN_HOUR_DELETE, params)
        self._created += created
        if self.changes is not None:  # after commit: readers' caches
            self.changes.expired(cutoff, pairs_deleted=False)
        return len(minutes)


class _Transaction:
    """BEGIN/COMMIT around a block; ROLLBACK when it raises.

    LadybugDB aborts the transaction itself on some errors (a full buffer pool,
    for one), after which ROLLBACK has nothing to undo and raises; the original
    error is the one worth reporting, as a StoreError. A COMMIT that raises may
    have applied the write all the same ("Transaction committed successfully, but
    the post-commit checkpoint failed"): `on_uncertain` is called then.
    """

    def __init__(self, conn: Writer, gate: CheckpointGate,
                 on_rollback: Callable[[], None], on_uncertain: Callable[[], None]) -> None:
        self.conn = conn
        self.gate = gate
        self.on_rollback = on_rollback
        self.on_uncertain = on_uncertain

    def __enter__(self) -> Writer:
        self.conn.execute("BEGIN TRANSACTION")
        return self.conn

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            try:
                with self.gate.alone():  # a COMMIT may checkpoint
                    self.conn.execute("COMMIT")
            except BaseException:
                self.on_uncertain()
                raise
            return
        self.on_rollback()
        try:
            self.conn.execute("ROLLBACK")
        except RuntimeError as rollback:
            if "no active transaction" not in str(rollback).lower():
                raise
        if isinstance(exc, RuntimeError) and not isinstance(exc, StoreError):
            raise StoreError(f"write failed and was rolled back: {exc}") from exc
