"""Aggregation: resolved calls into one CallBucket row per key per batch.

The hot path of ingestion. Rows are keyed by a plain tuple (client, server,
bucket start, protocol, method, path template) so the per-event cost is one
dict lookup and `CallBucket.record`. The per-edge template cap runs after the
batch is folded, on distinct rows rather than on events.
"""

from __future__ import annotations

from topology.ingest.paths import OVERFLOW_TEMPLATE
from topology.ingest.templates import TemplateCap
from topology.model import CallBucket

RowKey = tuple[str, str, int, str, str, str]


class Aggregator:
    def __init__(self, width: float) -> None:
        self.width = int(width)
        self.rows: dict[RowKey, CallBucket] = {}

    def add(
        self, client: str, server: str, naming: str, ts: float, protocol: str, method: str,
        path: str, duration_ms: float, error: bool, status: int | None, trace_id: str,
    ) -> None:
        width = self.width
        bucket = int(ts // width) * width
        key = (client, server, bucket, protocol, method, path)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = CallBucket(
                client=client, server=server, bucket=bucket, width=width,
                protocol=protocol, method=method, path=path, naming=naming,
            )
        else:
            row.naming = naming
        row.record(duration_ms, error=error, status=status, trace_id=trace_id)

    def capped(self, cap: TemplateCap) -> list[CallBucket]:
        """The rows, with templates an edge may not keep folded into `{overflow}`."""
        wanted: dict[str, set[str]] = {}
        for client, server, _, _, _, path in self.rows:
            if path:
                wanted.setdefault(f"{client}|{server}", set()).add(path)
        admitted = cap.admit(wanted)
        out: dict[RowKey, CallBucket] = {}
        for key, row in self.rows.items():
            client, server, bucket, protocol, method, path = key
            if path and path not in admitted.get(f"{client}|{server}", ()):
                key = (client, server, bucket, protocol, method, OVERFLOW_TEMPLATE)
                row.path = OVERFLOW_TEMPLATE
            existing = out.get(key)
            if existing is None:
                out[key] = row
            else:
                existing.merge(row)
        return list(out.values())
