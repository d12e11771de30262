"""A click group whose subcommands are imported when they are run, not when `topology` starts.

Every subcommand module brings its own libraries: `collect` the eBPF
collector, prometheus_client and http.server; `serve` the API; `replay` the
ingest pipeline. Imported up front, every process kept all of them:
`topology worker` imported 63 modules it never uses (the collector's,
prometheus_client's, http.server's and the API's; about 3 MB of RSS) next to
the 1,077 it does. This is click's documented lazy-loading pattern: the
group knows each command's import path, `list_commands` names them without
importing, and `get_command` imports the one asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click


class LazyGroup(click.Group):
    """A group with `lazy` subcommands: name -> "module:attribute" of a click command."""

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            self.add_command(load(self.lazy[cmd_name]), cmd_name)
        return super().get_command(ctx, cmd_name)


def load(path: str) -> click.Command:
    """The click command at "module:attribute"; a wrong path names itself."""
    module_name, _, attribute = path.partition(":")
    command = getattr(importlib.import_module(module_name), attribute, None)
    if not isinstance(command, click.Command):
        raise TypeError(f"lazy subcommand {path!r} is not a click command")
    return command
