"""Settings from the environment and flags; errors name the key at fault."""

from __future__ import annotations

import pytest

from topology.settings import SETTINGS, Settings, SettingsError


@pytest.mark.parametrize(("environ", "overrides", "message"), [
    ({"TOPOLOGY_STORE": "neo4j"}, {}, "TOPOLOGY_STORE=neo4j needs TOPOLOGY_NEO4J_URI"),
    ({"TOPOLOGY_STORE": "sqlite"}, {}, "TOPOLOGY_STORE: 'sqlite' is not a store"),
    ({"TOPOLOGY_PORT": "-1"}, {}, "TOPOLOGY_PORT: '-1' is not a positive integer"),
    ({"TOPOLOGY_QUERY_TIMEOUT": "soon"}, {}, "TOPOLOGY_QUERY_TIMEOUT: 'soon' is not a duration"),
    ({"TOPOLOGY_GRAPHIQL": "maybe"}, {}, "TOPOLOGY_GRAPHIQL: 'maybe' is not a boolean"),
    ({}, {"port": "http"}, "--port: invalid literal"),
    ({}, {"colour": "blue"}, "unknown setting 'colour'"),
    ({"TOPOLOGY_MINUTE_RETENTION": "40d"}, {}, "TOPOLOGY_MINUTE_RETENTION must not exceed"),
    ({"TOPOLOGY_BUCKET_WIDTH": "7m"}, {}, "TOPOLOGY_BUCKET_WIDTH=420s must divide one hour"),
    ({"TOPOLOGY_EMBEDDED_WRITER_THREADS": "-1"}, {},
     "TOPOLOGY_EMBEDDED_WRITER_THREADS: '-1' is not a non-negative integer"),
    ({"TOPOLOGY_EMBEDDED_WRITER_THREADS": "one"}, {},
     "TOPOLOGY_EMBEDDED_WRITER_THREADS: invalid literal"),
    ({}, {"embedded_writer_threads": -2}, "TOPOLOGY_EMBEDDED_WRITER_THREADS=-2 must not be"),
    ({"TOPOLOGY_EMBEDDED_REOPEN_ROWS": "-5"}, {},
     "TOPOLOGY_EMBEDDED_REOPEN_ROWS: '-5' is not a non-negative integer"),
    ({}, {"embedded_reopen_rows": -1}, "TOPOLOGY_EMBEDDED_REOPEN_ROWS=-1 must not be negative"),
])
def test_bad_settings_name_the_key(environ: dict, overrides: dict, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ, **overrides)
    assert message in str(caught.value)


def test_flags_override_the_environment_and_none_means_unset() -> None:
    settings = Settings.load(
        {"TOPOLOGY_PORT": "9000", "TOPOLOGY_DNS_RETENTION": "7d", "TOPOLOGY_STORE": "neo4j",
         "TOPOLOGY_NEO4J_URI": "bolt://db:7687"},
        port="9100", data_dir=None,
    )
    assert (settings.port, settings.dns_retention, settings.store) == (9100, 604800.0, "neo4j")
    assert settings.data_dir is None


def test_every_setting_has_a_default_and_help() -> None:
    defaults = Settings()
    for spec in SETTINGS:
        assert spec.env == "TOPOLOGY_" + spec.name.upper()
        assert spec.default == getattr(defaults, spec.name)
        assert spec.help
