"""Settings: one object built from TOPOLOGY_* environment variables and flags.

Every setting is declared in SETTINGS (name, parser, help) and typed, with its
default, as a field of the Settings dataclass. The environment variable is
TOPOLOGY_<NAME>; the command line flag is --<name> with dashes. Errors name
the key at fault, and cross-field rules (a Neo4j store needs a URI) are
checked in `validate`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from topology.durations import parse_duration

ENV_PREFIX = "TOPOLOGY_"
STORES = ("embedded", "neo4j")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the key."""


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{text!r} is not a boolean (use true or false)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"{text!r} is not a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"{text!r} is not a non-negative integer")
    return value


def _store(text: str) -> str:
    if text not in STORES:
        raise ValueError(f"{text!r} is not a store: use one of {', '.join(STORES)}")
    return text


def _optional(text: str) -> str | None:
    return text or None


@dataclass(frozen=True)
class Spec:
    name: str
    parse: Callable[[str], Any]
    help: str

    @property
    def default(self) -> Any:
        """The default lives once, on the Settings dataclass field of the same name."""
        return Settings.__dataclass_fields__[self.name].default

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "topology")


SETTINGS: tuple[Spec, ...] = (
    Spec("store", _store, "graph store: embedded (LadybugDB) or neo4j"),
    Spec("data_dir", str, "directory of the embedded store's file"),
    Spec("neo4j_uri", _optional, "Bolt URI of the Neo4j server (store=neo4j)"),
    Spec("neo4j_user", str, "Neo4j user name"),
    Spec("neo4j_password", str, "Neo4j password"),
    Spec("neo4j_database", str, "Neo4j database name"),
    Spec("neo4j_write_retry", parse_duration,
         "how long Neo4j writes retry transient errors and deadlocks"),
    Spec("redis_url", _optional, "Redis URL: Celery broker and DNS cache"),
    Spec("query_timeout", parse_duration, "time limit of one read query"),
    Spec("bucket_width", parse_duration, "width of the finest CALLS bucket"),
    Spec("minute_retention", parse_duration, "how long minute buckets are kept"),
    Spec("hour_retention", parse_duration, "how long hour buckets are kept"),
    Spec("batch_marker_retention", parse_duration,
         "how long applied batch ids are remembered (redelivery window)"),
    Spec("retention_interval", parse_duration, "how often the retention job runs"),
    Spec("dns_retention", parse_duration, "how long DNS answers name external IPs"),
    Spec("host", str, "address the API binds to"),
    Spec("port", _positive_int, "port the API binds to"),
    Spec("ingest_queue_size", _positive_int, "batches the embedded ingest queue holds"),
    Spec("max_body_bytes", _positive_int, "largest ingest request body"),
    Spec("log_level", str, "log level"),
    Spec("embedded_buffer_pool_mb", int,
         "memory LadybugDB may use for its buffer pool, in MiB (0: its default, 80% of RAM;"
         " the embedded store's working set must fit, or writes fail)"),
    Spec("embedded_reopen_rows", _non_negative_int,
         "reopen the embedded database after this many new rows (buckets, pairs, services),"
         " which gives back the pages LadybugDB cached (0: never; `topology worker` uses"
         " 20000 unless this is set)"),
    Spec("embedded_writer_threads", _non_negative_int,
         "threads LadybugDB may use to run one write of the embedded store (0: its default,"
         " every core; `topology worker` uses 1 unless this is set, leaving the other cores"
         " to its build helpers); reads keep every core"),
    Spec("graphiql", _bool, "serve GraphiQL on GET /graphql"),
    Spec("graphql_introspection", _bool, "allow GraphQL introspection queries"),
    Spec("graphql_max_depth", _positive_int, "deepest GraphQL selection (fragments expanded)"),
    Spec("graphql_max_aliases", _positive_int, "most aliases in one GraphQL document"),
    Spec("graphql_max_tokens", _positive_int, "most tokens in one GraphQL document"),
    Spec("graphql_max_complexity", _positive_int, "highest estimated GraphQL query cost"),
    Spec("graphql_max_items", _positive_int,
         "longest list a GraphQL answer holds (longer lists are cut and flagged truncated)"),
    Spec("graphql_timeout", parse_duration, "time limit of one GraphQL request"),
    Spec("tokens", _optional,
         'API bearer tokens as JSON: {"<token>": {"name": ..., "scopes": ["read", "ingest",'
         ' "admin"], "namespaces": [...]}}; none configured means no authentication'),
    Spec("tokens_file", _optional, "file holding the API bearer tokens (same JSON)"),
    Spec("drain_timeout", parse_duration,
         "how long shutdown waits to write the ingest batches already accepted"),
)
_SPECS = {spec.name: spec for spec in SETTINGS}


@dataclass(frozen=True)
class Settings:
    store: str = "embedded"
    data_dir: str | None = None
    neo4j_uri: str | None = None
    neo4j_user: str = "neo4j"
    neo4j_password: str = ""
    neo4j_database: str = "neo4j"
    neo4j_write_retry: float = 30.0
    redis_url: str | None = None
    query_timeout: float = 10.0
    bucket_width: float = 60.0
    minute_retention: float = 86400.0
    hour_retention: float = 30 * 86400.0
    batch_marker_retention: float = 2 * 86400.0
    retention_interval: float = 300.0
    dns_retention: float = 3600.0
    host: str = "127.0.0.1"
    port: int = 8080
    ingest_queue_size: int = 256
    max_body_bytes: int = 16 * 1024 * 1024
    embedded_buffer_pool_mb: int = 0
    embedded_writer_threads: int = 0
    embedded_reopen_rows: int = 0
    log_level: str = "info"
    graphiql: bool = True
    graphql_introspection: bool = True
    graphql_max_depth: int = 12
    graphql_max_aliases: int = 30
    graphql_max_tokens: int = 3000
    graphql_max_complexity: int = 20000
    graphql_max_items: int = 50000
    graphql_timeout: float = 30.0
    tokens: str | None = None
    tokens_file: str | None = None
    drain_timeout: float = 30.0

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> Settings:
        """Build from the environment, then flags (overrides win; None means unset)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in SETTINGS:
            raw = environ.get(spec.env)
            if raw is not None:
                values[spec.name] = _parse(spec, raw, spec.env)
        for name, value in overrides.items():
            if name not in _SPECS:
                raise SettingsError(f"unknown setting {name!r}")
            if value is None:
                continue
            if isinstance(value, str):
                value = _parse(_SPECS[name], value, _SPECS[name].flag)
            values[name] = value
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.store == "neo4j" and not self.neo4j_uri:
            raise SettingsError(
                "TOPOLOGY_STORE=neo4j needs TOPOLOGY_NEO4J_URI (e.g. bolt://localhost:7687)"
            )
        if self.minute_retention > self.hour_retention:
            raise SettingsError(
                "TOPOLOGY_MINUTE_RETENTION must not exceed TOPOLOGY_HOUR_RETENTION"
            )
        for name, zero in (("embedded_writer_threads", "LadybugDB's default, every core"),
                           ("embedded_reopen_rows", "never")):
            if getattr(self, name) < 0:
                raise SettingsError(
                    f"{_SPECS[name].env}={getattr(self, name)} must not be negative (0: {zero})")
        if self.bucket_width < 1 or 3600 % int(self.bucket_width):
            raise SettingsError(
                f"TOPOLOGY_BUCKET_WIDTH={self.bucket_width:g}s must divide one hour"
            )

    @property
    def embedded_path(self) -> Path:
        """The embedded store's database file (a single file, not a directory)."""
        return Path(self.data_dir or _default_data_dir()) / "topology.lbug"

    def with_(self, **changes: Any) -> Settings:
        updated = replace(self, **changes)
        updated.validate()
        return updated


def _parse(spec: Spec, raw: str, where: str) -> Any:
    try:
        return spec.parse(raw)
    except ValueError as exc:
        raise SettingsError(f"{where}: {exc}") from None


assert {f.name for f in fields(Settings)} == set(_SPECS), "Settings and SETTINGS disagree"
