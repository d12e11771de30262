"""The hot aggregation loop gives exactly what CallBucket.record gives."""

from __future__ import annotations

import random

from topology.ingest.aggregate import Aggregator
from topology.model import CallBucket


def test_rows_equal_record_by_record() -> None:
    rng = random.Random(7)
    events = []
    for n in range(5_000):
        status = rng.choice([None, 0, 99, 101, 200, 302, 404, 500, 503, 600, 999])
        events.append((
            f"c{rng.randrange(5)}", f"s{rng.randrange(5)}", rng.choice(["workload", "dns"]),
            1_000.0 + rng.random() * 300, rng.choice(["http", "grpc"]), rng.choice(["GET", ""]),
            rng.choice(["/a", "/b/{id}", ""]), rng.choice([0.0, 0.25, 3, 7.5, 99.9, 40_000.0]),
            rng.random() < 0.1, status, rng.choice(["", "", f"t{n % 9}"]),
        ))
    aggregator = Aggregator(60)
    assert aggregator.add_all(events) == len(events)

    expected: dict[str, CallBucket] = {}
    for client, server, naming, ts, protocol, method, path, ms, error, status, trace in events:
        bucket = CallBucket(client=client, server=server, bucket=int(ts // 60) * 60, width=60,
                            protocol=protocol, method=method, path=path)
        row = expected.setdefault(bucket.key, bucket)
        row.record(ms, error=error, status=status, trace_id=trace)
        row.naming = naming
    assert {row.key: row for row in aggregator.buckets()} == expected
