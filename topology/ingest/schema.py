"""The collector batch format: its JSON Schema, compiled once, and validation errors.

`events.schema.json` beside this module is the contract with the collectors.
Validation raises `InvalidBatch` naming the JSON path of the first (best)
error and why, e.g. `$.calls[3].side: 'sideways' is not one of ['client', 'server']`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match


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
    Draft202012Validator.check_schema(schema())
    return Draft202012Validator(schema())


def validate(payload: Any) -> None:
    if not isinstance(payload, Mapping):
        raise InvalidBatch(f"$: a batch is a JSON object, got {type(payload).__name__}")
    error = best_match(_validator().iter_errors(payload))
    if error is not None:
        raise InvalidBatch(f"{error.json_path}: {error.message}")
