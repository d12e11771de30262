"""Distributed ingestion: the API publishes, a real `topology worker` writes.

The worker owns its own embedded store file here (no Neo4j server on this
machine), which is enough to show the API's messages are the ingest task's.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.topology.api.helpers import serving
from tests.topology.ingest.celery_worker import WorkerProcess
from tests.topology.ingest.delivery_helpers import batch, expected_totals, totals
from topology.api.sinks import CelerySink
from topology.settings import Settings
from topology.store.base import GraphStore
from topology.store.ladybug_store import LadybugStore


def test_batches_posted_to_the_api_are_written_by_a_celery_worker(
    settings: Settings, embedded_store: GraphStore, redis_url: str, tmp_path: Path
) -> None:
    worker_dir = tmp_path / "worker-data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOPOLOGY_")} | {
        "TOPOLOGY_REDIS_URL": redis_url, "TOPOLOGY_STORE": "embedded",
        "TOPOLOGY_DATA_DIR": str(worker_dir),
    }
    distributed = settings.with_(redis_url=redis_url)
    batches = [batch(f"d-{n}", 20) for n in range(4)]
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        with serving(distributed, embedded_store, ingest=CelerySink(distributed)) as client:
            for payload in batches:
                assert client.post("/v1/events", json=payload).status_code == 202
            client.post("/v1/events", json=batches[0])  # a sender's retry: counted once
        worker.wait_log(r"ingest batch d-\d+: (applied|duplicate)", times=5)
    finally:
        worker.stop()
    with LadybugStore(Settings.load({}, data_dir=str(worker_dir))) as store:
        assert totals(store) == expected_totals(*batches)
    assert totals(embedded_store) == (0, 0)  # the API process wrote nothing itself
