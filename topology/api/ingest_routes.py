"""POST /v1/events (the collectors' batches) and POST /v1/traces (OTLP/HTTP).

Each request is read under the body limit, checked against the batch schema
(400 naming the JSON path and the reason) and handed to the app's ingest sink:
202 once accepted, 429 with Retry-After while the queue is full, 503 when the
broker is down. Nothing is written before the answer; accepted batches are
written in the background and survive a graceful shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from topology.api.body import BodyError, media_type, parse_json, read_body
from topology.api.metrics import ApiMetrics
from topology.api.otlp_intake import OtlpIntake
from topology.api.sinks import Backpressure, IngestSink
from topology.ingest.otlp import InvalidTraces
from topology.ingest.schema import InvalidBatch, validate

log = logging.getLogger(__name__)

JSON_TYPES = ("", "application/json")
OTLP_TYPES = ("application/x-protobuf", "application/protobuf", "application/json")


def error(status: int, code: str, message: str,
          headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status,
                        headers=dict(headers or {}))


def body_error(exc: BodyError) -> JSONResponse:
    return error(exc.status, "BAD_REQUEST" if exc.status == 400 else exc.reason.upper(),
                 exc.message)


def _calls(payload: Any) -> int:
    calls = payload.get("calls") if isinstance(payload, Mapping) else None
    return len(calls) if isinstance(calls, list) else 0


def _submit(sink: IngestSink, metrics: ApiMetrics, endpoint: str,
            batches: list[Mapping[str, Any]]) -> Response | None:
    """Hand every batch to the sink; the error response, or None when all were accepted."""
    for index, payload in enumerate(batches):
        try:
            sink.submit(payload)
        except Backpressure as exc:
            left = batches[index:]
            reason = "backpressure" if exc.status == 429 else "unavailable"
            metrics.rejected(endpoint, reason, sum(map(_calls, left)))
            log.warning("ingest %s refused: %s", endpoint, exc)
            code = "BACKPRESSURE" if exc.status == 429 else "UNAVAILABLE"
            return error(exc.status, code, str(exc), {"Retry-After": exc.retry_after})
        metrics.events_accepted.labels(endpoint).inc(_calls(payload))
    return None


async def post_events(request: Request) -> Response:
    state = request.app.state
    metrics: ApiMetrics = state.metrics
    try:
        if media_type(request) not in JSON_TYPES:
            raise BodyError(415, "unsupported", "send the batch as application/json")
        body = await read_body(request, state.settings.max_body_bytes)
    except BodyError as exc:
        metrics.rejected("events", exc.reason)
        return body_error(exc)
    # Parsing, validating and publishing block (CPU, or the broker): off the event loop.
    return await run_in_threadpool(_accept_events, state.ingest, metrics, body)


def _accept_events(sink: IngestSink, metrics: ApiMetrics, body: bytes) -> Response:
    try:
        payload = parse_json(body)
    except BodyError as exc:
        metrics.rejected("events", exc.reason)
        return body_error(exc)
    try:
        validate(payload)
    except InvalidBatch as exc:
        metrics.rejected("events", "invalid", _calls(payload))
        return error(400, "INVALID_BATCH", f"invalid batch: {exc}")
    refused = _submit(sink, metrics, "events", [payload])
    if refused is not None:
        return refused
    return JSONResponse({"accepted": True, "batch_id": payload["batch_id"],
                         "calls": _calls(payload)}, 202)


async def post_traces(request: Request) -> Response:
    """OTLP/HTTP traces, protobuf or JSON, turned into batches by the OTLP intake."""
    state = request.app.state
    metrics: ApiMetrics = state.metrics
    content_type = media_type(request)
    try:
        if content_type not in OTLP_TYPES:
            raise BodyError(415, "unsupported", f"Content-Type {content_type!r} is not"
                            f" one of {', '.join(OTLP_TYPES)}")
        body = await read_body(request, state.settings.max_body_bytes)
    except BodyError as exc:
        metrics.rejected("traces", exc.reason)
        return body_error(exc)
    return await run_in_threadpool(_accept_traces, state.otlp, metrics, body, content_type)


def _accept_traces(intake: OtlpIntake, metrics: ApiMetrics, body: bytes,
                   content_type: str) -> Response:
    try:
        intake.accept(body, content_type)
    except InvalidTraces as exc:
        metrics.rejected("traces", "invalid")
        return error(400, "INVALID_TRACES", str(exc))
    except Backpressure as exc:
        metrics.rejected("traces", "backpressure" if exc.status == 429 else "unavailable")
        code = "BACKPRESSURE" if exc.status == 429 else "UNAVAILABLE"
        return error(exc.status, code, str(exc), {"Retry-After": exc.retry_after})
    if content_type == "application/json":
        return JSONResponse({}, 200)
    return Response(b"", 200, media_type=content_type)
