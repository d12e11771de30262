"""Backend-neutral row preparation shared by both stores.

A batch may mention the same service or bucket key many times; every store
writes each key once (LadybugDB mishandles a key repeated inside one UNWIND,
and one write per key is cheaper anyway). Rows are plain dicts whose keys are
the stored property names (docs/storage.md). The `add_*` functions are the
one definition of how two rows for the same key combine: both the merge of an
incoming row into a stored one and the hourly roll-up use them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import chain
from typing import Any

from topology.model import MAX_EXEMPLARS, Batch, CallBucket, Service

Row = dict[str, Any]


def fresh(batches: Sequence[Batch], applied: Collection[str]) -> list[bool]:
    """Which batches to write: id not applied before and not repeated earlier in the call."""
    taken = set(applied)
    keep = []
    for batch in batches:
        keep.append(batch.id not in taken)
        taken.add(batch.id)
    return keep


def chosen(
    batches: Sequence[Batch], keep: Sequence[bool]
) -> tuple[list[Service], list[CallBucket]]:
    """Services and calls of the batches to write, in order, as one batch's would be."""
    picked = [batch for batch, ok in zip(batches, keep, strict=True) if ok]
    return (list(chain.from_iterable(b.services for b in picked)),
            list(chain.from_iterable(b.calls for b in picked)))


def merge_services(services: Iterable[Service]) -> dict[str, Row]:
    """One row per service id, sorted by id; the latest mention describes it."""
    merged: dict[str, Row] = {}
    for service in sorted(services, key=lambda s: s.seen):
        row = service_row(service)
        known = merged.get(service.id)
        merged[service.id] = row if known is None else add_service_rows(known, row)
    return dict(sorted(merged.items()))


def merge_buckets(buckets: Iterable[CallBucket], *, ordered: bool = True
                  ) -> dict[str, CallBucket]:
    """One bucket per key, sorted by key unless not `ordered` (the embedded store
    has no lock order to keep). Inputs are never changed: a key seen twice is
    merged into a copy (copy-on-merge keeps the common case cheap)."""
    merged: dict[str, CallBucket] = {}
    copied: set[str] = set()
    for bucket in buckets:
        key = bucket.key
        known = merged.get(key)
        if known is None:
            merged[key] = bucket
            continue
        if key not in copied:
            known = merged[key] = _copy(known)
            copied.add(key)
        known.merge(bucket)
    return dict(sorted(merged.items())) if ordered else merged


def _copy(bucket: CallBucket) -> CallBucket:
    return CallBucket(
        bucket.client, bucket.server, bucket.bucket, bucket.width, bucket.protocol,
        bucket.method, bucket.path, bucket.requests, bucket.errors, bucket.latency_sum_ms,
        list(bucket.histogram), list(bucket.status_classes), list(bucket.exemplars),
        bucket.naming,
    )


def labels_list(labels: Mapping[str, str]) -> list[str]:
    return [f"{key}={value}" for key, value in sorted(labels.items())]


def labels_dict(labels: Iterable[str] | None) -> dict[str, str]:
    return dict(item.split("=", 1) for item in labels or () if "=" in item)


def service_row(service: Service) -> Row:
    return {
        "id": service.id, "name": service.name, "namespace": service.namespace,
        "cluster": service.cluster, "kind": service.kind,
        "labels": labels_list(service.labels),
        "first_seen": service.seen, "last_seen": service.seen,
    }


def bucket_row(bucket: CallBucket) -> Row:
    return {
        "key": bucket.key, "client": bucket.client, "server": bucket.server,
        "width": bucket.width, "bucket": bucket.bucket, "protocol": bucket.protocol,
        "method": bucket.method, "path": bucket.path, "requests": bucket.requests,
        "errors": bucket.errors, "latency_sum": bucket.latency_sum_ms,
        "hist": list(bucket.histogram), "status": list(bucket.status_classes),
        "exemplars": list(bucket.exemplars), "naming": bucket.naming,
    }


def pair_rows(buckets: Iterable[CallBucket]) -> list[Row]:
    """One row per (client, server): first/last seen from bucket bounds, protocols."""
    pairs: dict[tuple[str, str], Row] = {}
    for bucket in buckets:
        row = {
            "client": bucket.client, "server": bucket.server,
            "first_seen": bucket.bucket, "last_seen": bucket.bucket + bucket.width,
            "protocols": [bucket.protocol], "naming": bucket.naming,
        }
        known = pairs.get((bucket.client, bucket.server))
        pairs[(bucket.client, bucket.server)] = row if known is None else add_pair_rows(known, row)
    return [pairs[key] for key in sorted(pairs)]


def add_service_rows(stored: Row, incoming: Row) -> Row:
    """Descriptive fields and labels from the incoming row; the seen range widened."""
    return {
        **incoming,
        "first_seen": min(stored["first_seen"], incoming["first_seen"]),
        "last_seen": max(stored["last_seen"], incoming["last_seen"]),
    }


def add_bucket_rows(stored: Row, incoming: Row) -> Row:
    exemplars = list(stored["exemplars"] or [])
    for trace_id in incoming["exemplars"] or []:
        if len(exemplars) >= MAX_EXEMPLARS:
            break
        if trace_id not in exemplars:
            exemplars.append(trace_id)
    return {
        **stored,
        "requests": stored["requests"] + incoming["requests"],
        "errors": stored["errors"] + incoming["errors"],
        "latency_sum": stored["latency_sum"] + incoming["latency_sum"],
        "hist": _add_lists(stored["hist"], incoming["hist"]),
        "status": _add_lists(stored["status"], incoming["status"]),
        "exemplars": exemplars,
        "naming": incoming["naming"] or stored["naming"],
    }


def add_pair_rows(stored: Row, incoming: Row) -> Row:
    return {
        **stored,
        "first_seen": min(stored["first_seen"], incoming["first_seen"]),
        "last_seen": max(stored["last_seen"], incoming["last_seen"]),
        "protocols": sorted(set(stored["protocols"] or []) | set(incoming["protocols"])),
        "naming": incoming["naming"] or stored["naming"],
    }


def roll_up(bucket_rows: Iterable[Row], width: int) -> list[Row]:
    """Fold bucket rows into rows of a wider bucket (e.g. minutes into hours)."""
    wide: dict[str, Row] = {}
    for row in bucket_rows:
        start = row["bucket"] - row["bucket"] % width
        key = "|".join(
            (row["client"], row["server"], str(width), str(start),
             row["protocol"], row["method"], row["path"])
        )
        folded = {**row, "key": key, "width": width, "bucket": start}
        known = wide.get(key)
        wide[key] = folded if known is None else add_bucket_rows(known, folded)
    return [wide[key] for key in sorted(wide)]


def _add_lists(left: list[int] | None, right: list[int]) -> list[int]:
    if not left:
        return list(right)
    if len(left) != len(right):
        raise ValueError(f"cannot add lists of {len(left)} and {len(right)} items")
    return [a + b for a, b in zip(left, right, strict=True)]
