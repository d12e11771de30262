"""Store flags and settings for the serve, replay and export commands.

Each command takes the common store flags itself, so it works alone and as
a subcommand of `topology`; flags given to the group (ctx.obj.flags) apply
too, and the command's own flags win.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from topology.settings import Settings, SettingsError
from topology.store import open_store
from topology.store.base import GraphStore, StoreError

_STORE_FLAGS = (
    click.option("--store", type=click.Choice(["embedded", "neo4j"]),
                 help="graph store [TOPOLOGY_STORE]"),
    click.option("--data-dir", help="directory of the embedded store [TOPOLOGY_DATA_DIR]"),
    click.option("--neo4j-uri", help="Bolt URI of Neo4j [TOPOLOGY_NEO4J_URI]"),
    click.option("--redis-url", help="Redis URL [TOPOLOGY_REDIS_URL]"),
)


def store_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_STORE_FLAGS):
        func = option(func)
    return func


def settings_from(ctx: click.Context, **flags: Any) -> Settings:
    group = getattr(ctx.obj, "flags", None) or {}
    merged = {**group, **{k: v for k, v in flags.items() if v is not None}}
    try:
        return Settings.load(**merged)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def open_initialised(settings: Settings) -> GraphStore:
    """The configured store with its schema, or a ClickException saying why not."""
    try:
        store = open_store(settings)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        store.init_schema()
    except StoreError as exc:
        store.close()
        raise click.ClickException(str(exc)) from None
    return store
