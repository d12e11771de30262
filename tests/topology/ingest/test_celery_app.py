"""Delivery options from the environment, the Celery configuration, the eviction check."""

from __future__ import annotations

import pytest
import redis

from topology.ingest.celery_app import (
    QUEUE,
    TASK_NAME,
    DeliveryOptions,
    EvictionPolicyError,
    celery_config,
    check_noeviction,
    create_app,
)
from topology.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, DeliveryOptions()),
        ({"TOPOLOGY_CELERY_VISIBILITY_TIMEOUT": "5m", "TOPOLOGY_INGEST_MAX_RETRIES": "0",
          "TOPOLOGY_INGEST_RETRY_BACKOFF": "500ms", "TOPOLOGY_INGEST_RETRY_BACKOFF_MAX": "1m",
          "TOPOLOGY_INGEST_MAX_WORKER_LOST": "1"},
         DeliveryOptions(300.0, 0, 0.5, 60.0, 1)),
        ({"TOPOLOGY_INGEST_GROUP_LINGER": "250ms"}, DeliveryOptions(group_linger=0.25)),
    ],
)
def test_options_from_environment(environ: dict[str, str], expected: DeliveryOptions) -> None:
    assert DeliveryOptions.load(environ) == expected


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TOPOLOGY_INGEST_MAX_RETRIES": "-1"}, "TOPOLOGY_INGEST_MAX_RETRIES: '-1'"),
        ({"TOPOLOGY_INGEST_RETRY_BACKOFF": "soon"}, "TOPOLOGY_INGEST_RETRY_BACKOFF: 'soon'"),
        ({"TOPOLOGY_CELERY_VISIBILITY_TIMEOUT": "30s"},
         "TOPOLOGY_INGEST_RETRY_BACKOFF_MAX=300s must be shorter than"),
        ({"TOPOLOGY_INGEST_GROUP_LINGER": "-1s"}, "TOPOLOGY_INGEST_GROUP_LINGER: '-1s'"),
        ({"TOPOLOGY_INGEST_GROUP_LINGER": "1m"}, "TOPOLOGY_INGEST_GROUP_LINGER=60s is above 5s"),
    ],
)
def test_bad_options_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        DeliveryOptions.load(environ)


def test_backoff_doubles_up_to_the_cap() -> None:
    options = DeliveryOptions(retry_backoff=2.0, retry_backoff_max=20.0)
    assert [options.countdown(n) for n in range(6)] == [2.0, 4.0, 8.0, 16.0, 20.0, 20.0]


def test_config_asks_for_late_ack_and_redelivery() -> None:
    config = celery_config(Settings(redis_url="redis://h:1/0"),
                           DeliveryOptions(visibility_timeout=4.0, retry_backoff_max=1.0))
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1
    assert config["broker_transport_options"] == {
        "visibility_timeout": 4.0, "unacked_restore_interval": 2,
        "unacked_restore_throttle": 1}
    assert config["task_default_queue"] == QUEUE


def test_config_needs_redis() -> None:
    with pytest.raises(SettingsError, match="TOPOLOGY_REDIS_URL"):
        celery_config(Settings(), DeliveryOptions())


def test_app_registers_the_task_with_its_delivery_flags() -> None:
    app = create_app(Settings(redis_url="redis://h:1/0"), DeliveryOptions(max_retries=4))
    task = app.tasks[TASK_NAME]
    assert (task.acks_late, task.reject_on_worker_lost, task.max_retries) == (True, True, 4)


def test_noeviction_redis_passes_the_check(redis_url: str) -> None:
    check_noeviction(redis.Redis.from_url(redis_url), redis_url)


def test_eviction_check_fails_clearly_when_redis_is_unreachable() -> None:
    url = "redis://127.0.0.1:1/0"
    with pytest.raises(EvictionPolicyError, match="cannot read maxmemory-policy"):
        check_noeviction(redis.Redis.from_url(url, socket_connect_timeout=1, retry=None), url)
