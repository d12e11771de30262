"""The serving process's retention job on the embedded store, with an injected clock."""

from __future__ import annotations

from tests.topology.ingest.delivery_helpers import T0, batch, wait_for
from topology.api.retention import RetentionJob
from topology.ingest.pipeline import Ingestor
from topology.settings import Settings
from topology.store.base import GraphStore


def test_run_once_rolls_up_and_expires_with_the_clock(
    settings: Settings, embedded_store: GraphStore
) -> None:
    Ingestor(embedded_store, settings).ingest(batch("old", 40))
    minute_buckets = embedded_store.stats()["minute_buckets"]
    assert minute_buckets > 0
    now = [T0 + 600]
    job = RetentionJob(embedded_store, interval=3600, clock=lambda: now[0])

    assert job.run_once().rolled_up == 0  # still within minute retention
    assert embedded_store.stats()["minute_buckets"] == minute_buckets

    now[0] = T0 + settings.minute_retention + 7200
    assert job.run_once().rolled_up == minute_buckets
    after_rollup = embedded_store.stats()
    assert after_rollup["minute_buckets"] == 0
    assert after_rollup["hour_buckets"] > 0

    now[0] = T0 + settings.hour_retention + 7200
    report = job.run_once()
    assert report.deleted_hours == after_rollup["hour_buckets"]
    assert report.deleted_services == after_rollup["services"] > 0
    assert embedded_store.stats()["services"] == 0
    assert (job.runs, job.failures) == (3, 0)


def test_failed_run_is_counted_and_the_thread_keeps_going(
    settings: Settings, embedded_store: GraphStore
) -> None:
    job = RetentionJob(embedded_store, interval=0.01).start()
    try:
        wait_for(lambda: job.runs >= 2, 30, "two scheduled retention runs")
        embedded_store.close()
        wait_for(lambda: job.failures >= 2, 30, "two failed runs on the closed store")
    finally:
        job.stop()
    assert job.run_once() is None
