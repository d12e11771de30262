"""The collector batch format: its JSON Schema, the typed records, and validation errors.

`events.schema.json` beside this module is the contract with the collectors.
A batch is decoded and checked in one step into the typed records of
`records.py` (msgspec, in C: about 2.4 µs per call record from JSON bytes
and 1.6 from dicts, where decoding then checking dicts with generated Python
cost about 10 and 5). Whenever the records say no, jsonschema decides: its
best match names the JSON path and the reason, e.g.
`$.calls[3].side: 'sideways' is not one of ['client', 'server']`. A batch
it accepts that the records did not (an integer written as 2.0, a duplicate
key whose last value is good, from bytes an integer beyond 64 bits) is
converted from its dicts, leniently, so nothing the schema allows is
refused. jsonschema is imported only for a batch the records refused: a
worker and its build helper that see valid batches never load it (about
8 MB of RSS each).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import msgspec

from topology.ingest import records, wirejson
from topology.ingest.records import Batch

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator


class InvalidBatch(ValueError):
    """The input is not a valid batch; the message says where (JSON path) and why.

    Never retried: the same payload would fail the same way.
    """


@cache
def schema() -> dict[str, Any]:
    text = resources.files("topology.ingest").joinpath("events.schema.json").read_text()
    return json.loads(text)


@cache
def _validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema())
    return Draft202012Validator(schema())


def validate(payload: Any) -> Batch:
    """The batch `payload` (decoded JSON, or a Batch already) holds; InvalidBatch
    with the JSON path and the reason when it is not one."""
    if isinstance(payload, Batch):
        return payload
    if not isinstance(payload, Mapping):
        raise InvalidBatch(f"$: a batch is a JSON object, got {type(payload).__name__}")
    try:
        return records.convert(payload)
    except msgspec.ValidationError:
        pass
    from jsonschema.exceptions import best_match

    error = best_match(_validator().iter_errors(payload))
    if error is not None:
        raise InvalidBatch(f"{error.json_path}: {error.message}")
    try:
        return records.convert(dict(payload), strict=False)
    except msgspec.ValidationError as exc:
        raise InvalidBatch(_located(str(exc))) from None


def decode(raw: bytes) -> Batch:
    """The batch stored as JSON `raw` (as `claims.encode` writes it); InvalidBatch
    when it is not JSON or not a batch."""
    if wirejson.TAG_BYTES not in raw:  # kombu-tagged values: only kombu restores them
        try:
            return records.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass  # jsonschema words the error, or accepts what the records did not
    return validate(stored_json(raw))


def stored_json(raw: bytes) -> Any:
    """A stored payload decoded as kombu's JSON would give it, not yet checked;
    InvalidBatch when it is not JSON."""
    try:
        return wirejson.loads(raw)
    except ValueError as exc:
        raise InvalidBatch(f"$: the stored payload is not JSON ({exc})") from None


def _located(message: str) -> str:
    """msgspec's "<why> - at `<path>`" as "<path>: <why>", as jsonschema's read."""
    why, sep, where = message.rpartition(" - at `")
    return f"{where.rstrip('`')}: {why}" if sep else f"$: {message}"
