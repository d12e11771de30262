"""Shared by the delivery tests: batches with known totals, and polling with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from topology.store.base import GraphStore
from topology.store.statement import Statement

T0 = 1_800_000_000.0
FRONTEND = {"namespace": "shop", "name": "frontend", "kind": "Deployment"}

TOTALS = Statement.same(
    "test.delivery.totals",
    "MATCH (e:CallBucket) RETURN count(e) AS rows, sum(e.requests) AS requests, "
    "sum(e.errors) AS errors",
)


def batch(batch_id: str, calls: int, *, servers: int = 5, minutes: int = 1,
          start: float = T0) -> dict[str, Any]:
    """`calls` client-side calls from frontend to `servers` backends, every 10th a 503,
    spread over `minutes` minute buckets (more minutes: more rows to write).

    The backends are named by an IP lease carried in the batch, so ingesting
    it touches Redis (leases) as well as the store.
    """
    endpoints = [
        {"ip": f"10.1.0.{n}", "workload": {"namespace": "shop", "name": f"backend-{n}",
                                           "kind": "Deployment"}, "from": start - 60}
        for n in range(servers)
    ]
    return {
        "batch_id": batch_id,
        "agent": "node-1",
        "endpoints": endpoints,
        "calls": [
            {
                "timestamp": start + 60 * (i % minutes) + (i % 50),
                "side": "client",
                "source": {"ip": "10.0.0.1", "workload": FRONTEND},
                "destination": {"ip": f"10.1.0.{i % servers}", "port": 8080},
                "protocol": "http", "method": "GET", "path": f"/items/{i}",
                "status": 503 if i % 10 == 0 else 200, "duration_ms": 1.0 + i % 7,
            }
            for i in range(calls)
        ],
    }


def expected_totals(*batches: dict[str, Any]) -> tuple[int, int]:
    calls = [c for b in batches for c in b["calls"]]
    return len(calls), sum(c["status"] >= 500 for c in calls)


def totals(store: GraphStore) -> tuple[int, int]:
    [row] = store.read(TOTALS)
    return int(row["requests"] or 0), int(row["errors"] or 0)


def wait_for(condition: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.05) -> Any:
    """Poll until `condition()` is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
