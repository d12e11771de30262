"""docker-compose.yml and the Dockerfile checked against the code (no Docker engine here).

Every `topology ...` command a container runs must parse against the real
click group (subcommand and options), every TOPOLOGY_* variable set must be a
setting, and the parts the distributed setup depends on must be present.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from topology.cli import main
from topology.settings import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
TOPOLOGY_SERVICES = sorted(name for name, svc in SERVICES.items() if "build" in svc)
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): str(value) for key, value in env.items()}


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def dockerfile_cmd() -> list[str]:
    match = re.search(r"^CMD\s+(\[.*\])\s*$", DOCKERFILE, re.MULTILINE)
    assert match, "Dockerfile has no exec-form CMD"
    return json.loads(match.group(1))


def parse_topology(args: list[str]) -> None:
    """Resolve `topology <args>` through the click group and parse the leaf's options.

    Nothing is invoked: click raises UsageError for an unknown subcommand or option.
    """
    assert args[0] == "topology", f"not a topology command: {args}"
    cmd: click.Command = main
    parent: click.Context | None = None
    name, rest = "topology", args[1:]
    while isinstance(cmd, click.Group):
        ctx = click.Context(cmd, info_name=name, parent=parent)
        name, sub, rest = cmd.resolve_command(ctx, rest)
        assert name is not None and sub is not None, f"{args}: no subcommand"
        cmd, parent = sub, ctx
    cmd.make_context(name, list(rest), parent=parent)


COMMANDS = {f"service:{name}": command(SERVICES[name]) for name in TOPOLOGY_SERVICES}
COMMANDS["Dockerfile:CMD"] = dockerfile_cmd()


@pytest.mark.parametrize("where", sorted(COMMANDS))
def test_commands_exist_in_the_cli(where: str) -> None:
    try:
        parse_topology(COMMANDS[where])
    except click.UsageError as exc:
        pytest.fail(f"{where}: `{shlex.join(COMMANDS[where])}` does not parse: "
                    f"{exc.format_message()} (commands of topology: {sorted(main.commands)})")


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_topology_variables_are_settings(name: str) -> None:
    known = {spec.env for spec in SETTINGS}
    unknown = {key for key in environment(SERVICES[name]) if key.startswith("TOPOLOGY_")} - known
    assert not unknown, f"service {name} sets {sorted(unknown)}, which no setting reads"


def test_every_part_of_the_distributed_setup_is_there() -> None:
    subcommands = {name: command(SERVICES[name])[1:2] for name in TOPOLOGY_SERVICES}
    assert {"serve", "worker", "collect"} <= {sub[0] for sub in subcommands.values() if sub}
    assert all(SERVICES[name]["build"] == "." for name in TOPOLOGY_SERVICES)


def test_neo4j_is_version_5_with_auth_from_the_environment() -> None:
    neo4j = SERVICES["neo4j"]
    assert re.fullmatch(r"neo4j:5(\.[\w.-]+)?", neo4j["image"])
    assert re.fullmatch(r"neo4j/\$\{NEO4J_PASSWORD[^}]*\}", environment(neo4j)["NEO4J_AUTH"])
    for name in TOPOLOGY_SERVICES:
        env = environment(SERVICES[name])
        if env.get("TOPOLOGY_STORE") == "neo4j":
            assert env["TOPOLOGY_NEO4J_URI"] == "bolt://neo4j:7687"
            assert env["TOPOLOGY_NEO4J_PASSWORD"].startswith("${NEO4J_PASSWORD")


def test_redis_never_evicts_and_keeps_an_append_only_file() -> None:
    args = command(SERVICES["redis"])
    assert args[0] == "redis-server"
    options = dict(zip(args[1::2], args[2::2], strict=True))
    assert options == {"--maxmemory-policy": "noeviction", "--appendonly": "yes"}
    for name in TOPOLOGY_SERVICES:
        url = environment(SERVICES[name]).get("TOPOLOGY_REDIS_URL")
        assert url in (None, "redis://redis:6379/0")


def test_collector_can_load_ebpf_programs() -> None:
    (collector,) = [SERVICES[n] for n in TOPOLOGY_SERVICES if command(SERVICES[n])[1] == "collect"]
    assert collector["privileged"] is True
    assert collector["pid"] == "host"
    assert collector["user"] == "root"
    assert command(collector)[2:] == ["--api", "http://api:8080"]
    mounts = {volume.split(":")[1] for volume in collector["volumes"]}
    assert {"/sys/kernel/debug", "/sys/fs/bpf", "/lib/modules", "/usr/src"} <= mounts


def test_dockerfile_installs_the_package_and_bcc() -> None:
    assert re.search(r"^FROM python:3\.11-slim", DOCKERFILE, re.MULTILINE)
    assert "python3-bpfcc" in DOCKERFILE
    assert re.search(r"pip install /src", DOCKERFILE)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "**/node_modules"} <= set(ignored)
