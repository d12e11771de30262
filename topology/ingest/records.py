"""The collector batch format as typed records, decoded and validated in one step.

`events.schema.json` is the contract with the collectors; these msgspec
Structs mirror it field by field (a test holds them to it, and a
differential test to jsonschema). Decoding a stored payload straight into
them checks every type and bound while it builds the objects: about a third
of what decoding to dicts and then checking them cost, and the records are
smaller and faster to read than dicts (`Resolver`, `Aggregator.place`).

An absent optional field reads as its default, which is what the ingest code
used to supply with `.get(name, default)`: "" for a workload's cluster,
namespace and host and for a call's method and path, 0.0 for a duration,
False for the error flag, True for `watched`, else None. A JSON null is still
refused wherever the schema does not allow it (the declared type is not
optional). Structs are not tracked by the garbage collector (`gc=False`):
they form no cycles.

`schema.validate` and `schema.decode` are the entry points; they fall back to
jsonschema whenever these types say no, so an error message is jsonschema's
and a batch jsonschema accepts is never refused here (see there).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct, field

_RECORD: dict[str, Any] = {"forbid_unknown_fields": True, "omit_defaults": True, "gc": False}

NonEmpty = Annotated[str, Meta(min_length=1)]
Port = Annotated[int, Meta(ge=0, le=65535)]
Count = Annotated[int, Meta(ge=0)]
# JSON Schema's "number": an integer stays an int, as json.loads would leave it.
Number = int | float
NonNegative = Annotated[int, Meta(ge=0)] | Annotated[float, Meta(ge=0)]
Kind = Literal["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Process"]


class Workload(Struct, **_RECORD):
    name: NonEmpty
    kind: Kind
    cluster: str = ""
    namespace: str = ""
    labels: dict[str, str] = None  # type: ignore[assignment]
    host: str = ""


class Peer(Struct, **_RECORD):
    ip: NonEmpty = None  # type: ignore[assignment]  # absent: None; null is refused
    port: Port = None  # type: ignore[assignment]
    workload: Workload = None  # type: ignore[assignment]
    service: Annotated[str, Meta(min_length=1, max_length=253)] = None  # type: ignore[assignment]


class Call(Struct, **_RECORD):
    timestamp: NonNegative
    side: Literal["client", "server"]
    source: Peer
    destination: Peer
    protocol: Annotated[str, Meta(min_length=1, max_length=32)]
    host: str = None  # type: ignore[assignment]
    method: Annotated[str, Meta(max_length=64)] = ""
    path: Annotated[str, Meta(max_length=4096)] = ""
    status: Annotated[int, Meta(ge=0, le=999)] = None  # type: ignore[assignment]
    error: bool = False
    duration_ms: NonNegative = 0.0
    trace_id: Annotated[str, Meta(max_length=64)] = None  # type: ignore[assignment]
    bytes_sent: Count = None  # type: ignore[assignment]
    bytes_received: Count = None  # type: ignore[assignment]


class DnsAnswer(Struct, **_RECORD):
    name: Annotated[str, Meta(min_length=1, max_length=253)]
    ips: list[str]
    timestamp: NonNegative
    ttl: Count = None  # type: ignore[assignment]


class Endpoint(Struct, **_RECORD):
    ip: NonEmpty
    workload: Workload
    start: Number = field(name="from")
    port: Port = None  # type: ignore[assignment]
    to: Number | None = None
    watched: bool = True


class Batch(Struct, **_RECORD):
    batch_id: Annotated[str, Meta(min_length=1, max_length=200)]
    agent: Annotated[str, Meta(min_length=1, max_length=200)]
    calls: list[Call] = field(default_factory=list)
    dns: list[DnsAnswer] = field(default_factory=list)
    endpoints: list[Endpoint] = field(default_factory=list)


_decoder = msgspec.json.Decoder(Batch)


def decode(raw: bytes) -> Batch:
    """A batch from JSON bytes; msgspec.ValidationError or DecodeError when the
    types say no (`schema.decode` then asks jsonschema)."""
    return _decoder.decode(raw)


def convert(payload: Any, strict: bool = True) -> Batch:
    """A batch from decoded JSON (dicts and lists); msgspec.ValidationError when
    the types say no. `strict=False` also takes an integral float for an
    integer, as JSON Schema does."""
    return msgspec.convert(payload, Batch, strict=strict)


def plain(record: Struct) -> Any:
    """A record back as JSON-like dicts, optional fields at their default left out."""
    return msgspec.to_builtins(record)
