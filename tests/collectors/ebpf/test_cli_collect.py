"""The `collect` command's options and its review output of the BPF C."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from collectors.cli_collect import command


def test_print_bpf_shows_the_compiled_options() -> None:
    result = CliRunner().invoke(command, ["--print-bpf", "--max-head", "128",
                                          "--ringbuf-pages", "64"])
    assert result.exit_code == 0, result.output
    assert "#define MAX_HEAD 128" in result.output
    assert "#define RINGBUF_PAGES 64" in result.output
    assert "TRACEPOINT_PROBE(syscalls, sys_exit_connect)" in result.output


@pytest.mark.parametrize(("args", "message"), [
    ([], "give exactly one of --api URL, --broker URL, --output FILE"),
    (["--api", "http://a", "--broker", "redis://b"], "give exactly one of"),
    (["--output", "-", "--ringbuf-pages", "3"], "power of two"),
])
def test_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 2
    assert message in result.output
