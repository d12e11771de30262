"""GET /healthz (the process answers), /readyz (store and broker answer), /metrics."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from topology.api.sinks import NotReady
from topology.store.base import StoreError


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _readiness(request: Request) -> str | None:
    """Why the service is not ready, or None."""
    state = request.app.state
    if getattr(state, "stopping", False):
        return "shutting down"
    try:
        state.store.ping()
    except StoreError as exc:
        return f"store: {exc}"
    sink = getattr(state, "ingest", None)
    if sink is not None:
        try:
            sink.check()
        except NotReady as exc:
            return f"ingest: {exc}"
    return None


async def readyz(request: Request) -> Response:
    reason = await asyncio.to_thread(_readiness, request)
    if reason is not None:
        return JSONResponse({"status": "unavailable", "reason": reason}, 503)
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    body = generate_latest(request.app.state.metrics.registry)
    return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})
