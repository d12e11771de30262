"""The `topology` console command: one click group, subcommands per concern.

Every setting is a TOPOLOGY_* environment variable; the group's flags for the
common ones override the environment (see topology/settings.py).
"""

from __future__ import annotations

import json
import time

import click

from topology.cli_lazy import LazyGroup
from topology.cli_options import open_initialised, settings_from
from topology.settings import Settings


class Context:
    """Flags given to the group; subcommands merge them into their settings
    (topology/cli_options.py `settings_from`)."""

    def __init__(self, **flags: object) -> None:
        self.flags = flags


# Subcommands in their own modules (one concern each), imported when run (cli_lazy.py).
SUBCOMMANDS = {
    "up": "topology.cli_up:up",
    "serve": "topology.cli_serve:serve",
    "worker": "topology.cli_worker:worker",
    "deadletter": "topology.cli_worker:deadletter",
    "collect": "collectors.cli_collect:command",
    "replay": "topology.cli_replay:replay",
    "export": "topology.cli_export:export",
}


@click.group(cls=LazyGroup, lazy=SUBCOMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", default=None, help="embedded (default) or neo4j [TOPOLOGY_STORE]")
@click.option("--data-dir", default=None, help="embedded store directory [TOPOLOGY_DATA_DIR]")
@click.option("--neo4j-uri", default=None, help="Neo4j Bolt URI [TOPOLOGY_NEO4J_URI]")
@click.option("--redis-url", default=None, help="Redis URL [TOPOLOGY_REDIS_URL]")
@click.pass_context
def main(ctx: click.Context, **flags: object) -> None:
    """Topology: the service map answered from real traffic."""
    ctx.obj = Context(**flags)


@main.group()
def store() -> None:
    """Manage the graph store."""


@store.command("init")
@click.pass_context
def store_init(ctx: click.Context) -> None:
    """Create the schema (tables, constraints, indexes); safe to run again."""
    settings = settings_from(ctx)
    open_initialised(settings).close()
    click.echo(f"schema ready in {_describe(settings)}")


@store.command("stats")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
def store_stats(ctx: click.Context, as_json: bool) -> None:
    """Count services, pairs, buckets and applied batches."""
    with open_initialised(settings_from(ctx)) as graph:
        counts = graph.stats()
    if as_json:
        click.echo(json.dumps(counts))
    else:
        for name, count in counts.items():
            click.echo(f"{name:15} {count}")


@store.command("retention")
@click.option("--now", type=int, default=None, help="epoch seconds to treat as now")
@click.pass_context
def store_retention(ctx: click.Context, now: int | None) -> None:
    """Roll minute buckets into hours and expire old data, once."""
    with open_initialised(settings_from(ctx)) as graph:
        report = graph.retention(int(time.time()) if now is None else now)
    click.echo(json.dumps(report.__dict__))


def _describe(settings: Settings) -> str:
    if settings.store == "neo4j":
        return f"Neo4j at {settings.neo4j_uri}"
    return f"embedded store {settings.embedded_path}"


if __name__ == "__main__":
    main()
