"""The `topology` group imports a subcommand's module only when that subcommand runs."""

from __future__ import annotations

import ast
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from topology.cli import SUBCOMMANDS, main
from topology.cli_lazy import LazyGroup, load


@pytest.mark.parametrize(("name", "path"), sorted(SUBCOMMANDS.items()))
def test_every_lazy_subcommand_loads_under_its_name(name: str, path: str) -> None:
    command = load(path)
    assert command.name == name
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: main {name}")


def test_the_group_lists_every_subcommand_without_importing_them() -> None:
    probe = ("import sys\n"
             "import click\n"
             "from topology.cli import main\n"
             "names = main.list_commands(click.Context(main))\n"
             "print(sorted(names))\n"
             "print(sorted(m for m in sys.modules if m.startswith(('collectors',"
             " 'topology.cli_', 'topology.api', 'celery'))))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert ast.literal_eval(out[0]) == sorted([*SUBCOMMANDS, "store"])
    assert ast.literal_eval(out[1]) == ["topology.cli_lazy", "topology.cli_options"]


def test_a_path_that_is_not_a_command_is_named() -> None:
    with pytest.raises(TypeError, match=r"'topology\.cli:SUBCOMMANDS' is not a click command"):
        load("topology.cli:SUBCOMMANDS")


def test_an_unknown_subcommand_is_refused_as_click_refuses_it() -> None:
    group = LazyGroup(name="g", lazy={"one": "topology.cli_worker:worker"})
    result = CliRunner().invoke(group, ["two"])
    assert result.exit_code == 2 and "No such command 'two'" in result.output
    assert isinstance(group.get_command(click.Context(group), "one"), click.Command)
