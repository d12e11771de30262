"""`topology export`: the live service map as Mermaid, DOT or JSON, for docs and runbooks.

The map is `queries.service_map` over the window (the last hour by default)
and the filter, exactly what the API's serviceMap answers.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from topology.cli_options import open_initialised, settings_from, store_flags
from topology.diagram import FORMATS, render
from topology.durations import parse_duration
from topology.store.base import StoreError


def _duration(text: str) -> int:
    try:
        seconds = int(parse_duration(text))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--last") from None
    if seconds <= 0:
        raise click.BadParameter(f"{text!r} is not a positive duration", param_hint="--last")
    return seconds


@click.command("export")
@store_flags
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="mermaid",
              show_default=True, help="diagram format")
@click.option("--filter", "filter_text", default="", help="filter, as in the map UI")
@click.option("--last", default="1h", show_default=True, help="window length, e.g. 15m, 7d")
@click.option("--now", type=int, help="epoch seconds the window ends at (default: now)")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="write to this file instead of stdout")
@click.pass_context
def export(ctx: click.Context, fmt: str, filter_text: str, last: str, now: int | None,
           output: Path | None, **flags: object) -> None:
    """Export the service map of a window as a diagram."""
    # here, not at the top: every `topology` command (the worker too) imports this module
    from queries.errors import FilterError
    from queries.service_map import service_map
    from queries.window import Window

    window = Window.last(_duration(last), int(time.time()) if now is None else now)
    settings = settings_from(ctx, **flags)
    store = open_initialised(settings)
    try:
        graph = service_map(store, window, filter_text)
    except FilterError as exc:
        raise click.BadParameter(str(exc), param_hint="--filter") from None
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    text = render(graph, fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {len(graph.services)} services and {len(graph.edges)} edges"
                   f" to {output}", err=True)
