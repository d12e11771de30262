"""The one middleware every HTTP request passes: who is calling, may they, how long.

It authenticates the caller (request.state.principal, for the GraphQL
resolvers too), checks the scope the route needs (`read` for /graphql,
`ingest` for /v1/*, `admin` for /metrics; the probes are open), refuses what
the API never serves (WebSocket, multipart uploads to /graphql), times the
request for /metrics and writes one access log line.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from topology.api.auth import NOBODY, UNAUTHENTICATED, AuthError, authenticate, require
from topology.api.metrics import ApiMetrics
from topology.settings import Settings

log = logging.getLogger("topology.api.access")

OPEN = frozenset({"/healthz", "/readyz"})


def required_scope(path: str) -> str | None:
    if path in OPEN:
        return None
    if path.startswith("/v1/"):
        return "ingest"
    if path == "/metrics":
        return "admin"
    return "read"


def _refusal(path: str, status: int, code: str, message: str) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="topology"'} if status == 401 else {}
    if path == "/graphql":
        body: dict[str, Any] = {"data": None, "errors": [
            {"message": message, "extensions": {"code": code}}]}
    else:
        body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status, headers=headers)


class ApiMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, metrics: ApiMetrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path, method = scope["path"], scope["method"]
        status = 500
        principal = NOBODY

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            headers = Headers(scope=scope)
            refusal: Response | None = None
            scope_needed = required_scope(path)
            try:
                principal = authenticate(headers, self.settings)
                if scope_needed:
                    require(principal, scope_needed)
            except AuthError as exc:
                if scope_needed or exc.code != UNAUTHENTICATED:
                    refusal = _refusal(path, exc.status, exc.code, exc.message)
            if refusal is None and path == "/graphql" and headers.get(
                    "content-type", "").lower().startswith("multipart/"):
                refusal = _refusal(path, 415, "UNSUPPORTED_MEDIA_TYPE",
                                   "multipart requests (file uploads) are not accepted")
            scope.setdefault("state", {})["principal"] = principal
            if refusal is not None:
                await refusal(scope, receive, send_status)
            else:
                await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - started
            self.metrics.observe(path, method, status, seconds)
            log.info("%s %s %d", method, path, status, extra={
                "method": method, "path": path, "status": status,
                "duration_ms": round(seconds * 1000, 2), "principal": principal.name,
                "client": (scope.get("client") or ("",))[0],
            })
