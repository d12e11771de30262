"""`topology worker` (the Celery ingest worker) and `topology deadletter` commands.

`worker` refuses to start unless Redis runs `maxmemory-policy noeviction`:
an evicting Redis could drop queued batches or dead letters without a trace.
With the embedded store a worker owns the database file, so it runs in one
process with a pool of task threads (`--concurrency`, default
EMBEDDED_THREADS) whose batches share transactions (group commit), builds
batches in helper processes (`--build-processes`, offload.py), and caps
LadybugDB's buffer pool, runs each write on one of LadybugDB's threads and
reopens the database every so many new rows, unless the settings say
otherwise (WORKER_DEFAULTS); several workers need the
Neo4j store, where each pool process has its own driver. Either way it sets
glibc's malloc to give freed memory back and trims its heaps twice a second
(`topology.malloctune`), and starts Celery's worker without Celery's command
line (`_run_worker`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import click
import redis

from topology.cli_options import settings_from, store_flags
from topology.settings import Settings, SettingsError

# Task threads of an embedded-store worker: batches in flight, so at most this
# many share one transaction. The calls of a transaction's batches are folded
# into one set of rows (topology/ingest/coalesce.py), so more batches per
# transaction cost little in the store; and the threads of a group wait for
# its commit, so only the others keep the build helper busy meanwhile. A batch
# in flight is held as its claim-check key, then as its placed calls (about
# 0.5 MB for 5,000): 32 (with a 2 s linger) wrote bench/ingest_e2e.py in 2-3
# transactions instead of 16's 4, with no higher RSS peak (docs/delivery.md).
EMBEDDED_THREADS = 32
# The worker's own defaults of settings that are 0 ("LadybugDB's default", "never")
# elsewhere, each kept unless its TOPOLOGY_ variable is set:
WORKER_DEFAULTS = {
    # LadybugDB's buffer pool (its own default is 80% of RAM): bench/ingest_e2e.py
    # writes fine with it (docs/delivery.md)
    "embedded_buffer_pool_mb": 256,
    # LadybugDB's threads for one write (its own default is every core): the build
    # helper works on the other core while a transaction runs, and a write on one
    # thread costs less CPU for the same wall time (docs/delivery.md)
    "embedded_writer_threads": 1,
    # reopen the database every 20,000 new rows (two minutes at 10,000 edges a minute;
    # 0.02-0.1 s each): the pages LadybugDB cached meanwhile are given back, where the
    # pool would otherwise fill up to its cap over hours of data (docs/storage.md,
    # "Where the buffer pool's pages go"), and so are the 25-40 MB of pool pages that
    # creating the first minute's 10,000 pairs from a rows file leaves (docs/delivery.md,
    # "The worker without pyarrow")
    "embedded_reopen_rows": 20_000,
}


def worker_overrides(environ: Mapping[str, str]) -> dict[str, int]:
    """The worker's own defaults whose setting the environment does not give."""
    return {name: value for name, value in WORKER_DEFAULTS.items()
            if "TOPOLOGY_" + name.upper() not in environ}


def _settings(ctx: click.Context, **flags: Any) -> Settings:
    """Settings from the environment, the group's flags and this command's; Redis required."""
    settings = settings_from(ctx, **flags)
    if not settings.redis_url:
        raise click.UsageError(
            "no Redis: pass --redis-url or set TOPOLOGY_REDIS_URL (e.g. redis://localhost:6379/0)"
        )
    return settings


@click.command("worker")
@store_flags
@click.option("--concurrency", type=click.IntRange(min=1),
              help="pool processes (neo4j store); task threads sharing transactions"
                   f" (embedded store, default {EMBEDDED_THREADS})")
@click.option("--build-processes", type=click.IntRange(min=0),
              help="embedded store: helper processes that decode, validate and resolve"
                   " batches on other cores (default 1; 0: in the worker process;"
                   " TOPOLOGY_INGEST_BUILD_PROCESSES)")
@click.option("--loglevel", default="info", show_default=True)
@click.option("--logfile", help="write the worker log to this file instead of stderr")
@click.option("--hostname", default="topology@%h", show_default=True,
              help="Celery node name")
@click.pass_context
def worker(
    ctx: click.Context,
    redis_url: str | None,
    store: str | None,
    data_dir: str | None,
    neo4j_uri: str | None,
    concurrency: int | None,
    build_processes: int | None,
    loglevel: str,
    logfile: str | None,
    hostname: str,
) -> None:
    """Run a Celery worker that ingests batches from Redis into the graph store."""
    from topology import malloctune
    from topology.ingest.celery_app import (
        QUEUE,
        DeliveryOptions,
        EvictionPolicyError,
        check_noeviction,
        create_app,
    )

    # before any thread or the store exists: glibc then gives freed memory back
    if malloctune.tune(os.environ):
        malloctune.Trimmer().start()  # and the free pages inside its heaps, twice a second
    settings = _settings(ctx, redis_url=redis_url, store=store, data_dir=data_dir,
                         neo4j_uri=neo4j_uri,
                         **worker_overrides(os.environ))
    assert settings.redis_url is not None
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    try:
        check_noeviction(client, settings.redis_url)
    except EvictionPolicyError as exc:
        raise click.ClickException(f"refusing to start the worker: {exc}") from None
    finally:
        client.close()
    from topology.ingest import offload

    if build_processes is not None:  # read by the ingest task's runtime (offload.py)
        os.environ[offload.PROCESSES_ENV] = str(build_processes)
    try:
        offload.processes()
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    pool = "prefork"
    if settings.store == "embedded":
        # One process owns the file; its task threads share transactions.
        pool, concurrency = "threads", concurrency or EMBEDDED_THREADS
    try:
        app = create_app(settings, DeliveryOptions.load())
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    from topology.ingest import gctune

    gctune.tune()  # live payloads are large and acyclic: collect rarely (gctune.py)
    exitcode = _run_worker(app, loglevel=loglevel, logfile=logfile, hostname=hostname,
                           queue=QUEUE, pool=pool, concurrency=concurrency)
    if exitcode:
        ctx.exit(exitcode)


def _run_worker(app: Any, *, loglevel: str, logfile: str | None, hostname: str, queue: str,
                pool: str, concurrency: int | None) -> int:
    """Start Celery's worker as `celery worker` would, without Celery's command line:
    `app.worker_main` goes through `celery.bin`, whose interactive shell (click-repl,
    prompt_toolkit, pygments) adds about 9 MB to the worker's RSS for nothing."""
    from celery.concurrency import get_implementation
    from celery.utils.log import mlevel
    from celery.utils.nodenames import default_nodename, host_format

    try:
        level = mlevel(loglevel.upper())
    except KeyError:
        raise click.UsageError(f"--loglevel: unknown level {loglevel!r}") from None
    celery_worker = app.Worker(
        hostname=host_format(default_nodename(hostname)), pool_cls=get_implementation(pool),
        loglevel=level, logfile=logfile, queues=[queue], concurrency=concurrency or 0,
        without_gossip=True, without_mingle=True)
    celery_worker.start()
    return int(celery_worker.exitcode or 0)


@click.group("deadletter")
@store_flags
@click.pass_context
def deadletter(ctx: click.Context, **flags: Any) -> None:
    """Inspect, replay or purge batches the ingest task gave up on."""
    ctx.obj = _settings(ctx, **flags)


def _letters(ctx: click.Context) -> Any:
    from topology.ingest.deadletter import DeadLetters

    settings: Settings = ctx.obj
    assert settings.redis_url is not None
    return DeadLetters.from_url(settings.redis_url)


@deadletter.command("list")
@click.pass_context
def list_letters(ctx: click.Context) -> None:
    """One line per dead batch: id, attempts, error."""
    letters = _letters(ctx).list()
    for letter in letters:
        click.echo(f"{letter.id}\tattempts={letter.attempts}\t{letter.error_type}: {letter.error}")
    click.echo(f"{len(letters)} dead letter(s)", err=True)


@deadletter.command("show")
@click.argument("ident")
@click.pass_context
def show(ctx: click.Context, ident: str) -> None:
    """The full entry of one dead batch, payload included, as JSON."""
    letter = _letters(ctx).get(ident)
    if letter is None:
        raise click.ClickException(f"no dead letter with id {ident!r}")
    click.echo(json.dumps(json.loads(letter.to_json()), indent=2))


@deadletter.command("replay")
@click.argument("ident", required=False)
@click.option("--all", "replay_all", is_flag=True, help="replay every dead letter")
@click.pass_context
def replay(ctx: click.Context, ident: str | None, replay_all: bool) -> None:
    """Publish dead batches to the ingest queue again (by ID, or --all)."""
    if bool(ident) == replay_all:
        raise click.UsageError("give one dead letter ID or --all")
    from topology.ingest.celery_app import DeliveryOptions, create_app
    from topology.ingest.tasks import publish

    app = create_app(ctx.obj, DeliveryOptions.load())
    letters = _letters(ctx)
    try:
        if replay_all:
            count = letters.replay_all(lambda payload: publish(app, payload))
        elif letters.replay(ident, lambda payload: publish(app, payload)):
            count = 1
        else:
            raise click.ClickException(f"no dead letter with id {ident!r}")
    finally:
        app.close()
    click.echo(f"replayed {count} dead letter(s)")


@deadletter.command("purge")
@click.confirmation_option(prompt="Delete every dead letter for good?")
@click.pass_context
def purge(ctx: click.Context) -> None:
    """Delete every dead letter."""
    click.echo(f"purged {_letters(ctx).purge()} dead letter(s)")
