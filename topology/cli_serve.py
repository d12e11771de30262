"""`topology serve`: the API under uvicorn, with in-process ingestion and retention.

On the embedded default it needs nothing else running: it opens the store,
writes accepted batches itself and runs the retention job. Without tokens it
binds only to loopback; another address needs --allow-unauthenticated (and
says so in the log). SIGINT/SIGTERM stop it gracefully: uvicorn finishes the
open requests, then every accepted batch is written before the store closes.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

import click

from topology.api.auth import token_table
from topology.cli_options import open_initialised, settings_from, store_flags
from topology.settings import Settings, SettingsError

if TYPE_CHECKING:  # the server and the API only for `serve`: every command imports this module
    import uvicorn

log = logging.getLogger("topology.serve")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, allow_unauthenticated: bool) -> None:
    """Refuse to serve beyond loopback without tokens, unless explicitly allowed."""
    try:
        tokens = token_table(settings)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    if tokens or is_loopback(settings.host):
        return
    if not allow_unauthenticated:
        raise click.UsageError(
            f"refusing to serve on {settings.host} without authentication: configure"
            " TOPOLOGY_TOKENS (or TOPOLOGY_TOKENS_FILE), bind to 127.0.0.1, or pass"
            " --allow-unauthenticated"
        )
    log.warning("serving on %s WITHOUT authentication (--allow-unauthenticated): anyone who"
                " reaches this address can read the map and ingest events", settings.host)


class _Stopped(Exception):
    """uvicorn re-raises the stop signal after its graceful shutdown; this ends `serve`."""


def _stopped(sig: int, frame: FrameType | None) -> None:
    raise _Stopped(sig)


def run_server(config: uvicorn.Config) -> None:
    """uvicorn.Server.run, returning normally after SIGINT/SIGTERM so cleanup runs."""
    import uvicorn

    if threading.current_thread() is not threading.main_thread():
        uvicorn.Server(config).run()
        return
    previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        uvicorn.Server(config).run()
    except _Stopped as stop:
        log.info("stopped by %s", signal.Signals(stop.args[0]).name)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.command("serve")
@store_flags
@click.option("--host", help="address to bind [TOPOLOGY_HOST, default 127.0.0.1]")
@click.option("--port", type=int, help="port to bind [TOPOLOGY_PORT, default 8080]")
@click.option("--allow-unauthenticated", is_flag=True,
              help="serve beyond loopback without tokens (logs a warning)")
@click.option("--log-level", help="debug, info, warning, error [TOPOLOGY_LOG_LEVEL]")
@click.pass_context
def serve(ctx: click.Context, allow_unauthenticated: bool, **flags: object) -> None:
    """Serve the GraphQL API and the ingest endpoints."""
    import uvicorn

    from topology.api import logs
    from topology.api.app import create_app
    from topology.api.retention import RetentionJob

    settings = settings_from(ctx, **flags)
    logs.configure(settings.log_level)
    check_exposure(settings, allow_unauthenticated)
    store = open_initialised(settings)
    retention = RetentionJob(store, settings.retention_interval).start()
    try:
        app = create_app(settings, store)
        config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None,
                                lifespan="on", ws="none", server_header=False,
                                timeout_graceful_shutdown=settings.drain_timeout)
        run_server(config)
    finally:
        retention.stop()
        store.close()
    log.info("topology serve stopped")
