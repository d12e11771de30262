"""The collector batch format: its JSON Schema, compiled once, and validation errors.

`events.schema.json` beside this module is the contract with the collectors.
Valid batches are checked by code compiled from the schema (fastjsonschema,
about 30 times faster than interpreting it); a batch that fails is checked
again by jsonschema, whose best match names the JSON path and the reason, e.g.
`$.calls[3].side: 'sideways' is not one of ['client', 'server']`. The
compiled check only decides; the message always comes from jsonschema.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
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


@cache
def _compiled() -> Callable[[Any], Any]:
    # The relative $id would make fastjsonschema resolve $refs as remote URLs.
    local = {k: v for k, v in schema().items() if k != "$id"}
    return fastjsonschema.compile(local, use_default=False)


def validate(payload: Any) -> None:
    if not isinstance(payload, Mapping):
        raise InvalidBatch(f"$: a batch is a JSON object, got {type(payload).__name__}")
    try:
        _compiled()(payload)
        return
    except fastjsonschema.JsonSchemaValueException as exc:
        fallback = f"$.{'.'.join(exc.path[1:])}: {exc.message}"
    error = best_match(_validator().iter_errors(payload))
    raise InvalidBatch(f"{error.json_path}: {error.message}" if error else fallback)
