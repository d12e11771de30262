"""The collector batch format: its JSON Schema, compiled once, and validation errors.

`events.schema.json` beside this module is the contract with the collectors.
Valid batches are checked by code compiled from the schema once
(`schema_check`, a few microseconds per call record where interpreting the
schema costs about 700); a batch that fails is checked again by jsonschema,
whose best match names the JSON path and the reason, e.g.
`$.calls[3].side: 'sideways' is not one of ['client', 'server']`. The
compiled check only decides; the message always comes from jsonschema,
imported only then: a worker and its build helper that see valid batches
never load it (about 8 MB of RSS each).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from topology.ingest.schema_check import compile_check

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


@cache
def _compiled() -> Callable[[Any], bool]:
    return compile_check(schema())


def validate(payload: Any) -> None:
    if not isinstance(payload, Mapping):
        raise InvalidBatch(f"$: a batch is a JSON object, got {type(payload).__name__}")
    if isinstance(payload, dict) and _compiled()(payload):
        return
    from jsonschema.exceptions import best_match

    error = best_match(_validator().iter_errors(payload))
    if error is not None:
        raise InvalidBatch(f"{error.json_path}: {error.message}")
