"""The Celery application of distributed ingestion (Redis broker).

Delivery guarantees come from three places: the broker keeps a message until
the task acknowledges it (late acknowledgement), a message whose worker died
goes back to the queue (reject-on-worker-lost for a lost pool process, the
Redis transport's visibility timeout for a lost worker), and the store applies
each batch id at most once, so redelivery never double-counts.

`create_app(settings)` builds a configured app; the module attribute `app` is
built lazily from the environment so `celery -A topology.ingest.celery_app`
works too. Delivery options not (yet) in `Settings` are read from TOPOLOGY_*
environment variables by `DeliveryOptions.load`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from celery import Celery

from topology.durations import parse_duration
from topology.ingest.coalesce import DEFAULT_LINGER
from topology.settings import Settings, SettingsError

QUEUE = "topology.ingest"
DEFAULT_PAYLOAD_TTL = 7 * 86400.0
TASK_NAME = "topology.ingest.batch"
DEFAULT_GROUP_LINGER = DEFAULT_LINGER
MAX_GROUP_LINGER = 5.0


@dataclass(frozen=True)
class DeliveryOptions:
    """Retry and redelivery knobs of the Celery ingest task.

    visibility_timeout: a message taken by a worker that neither acknowledged
      nor rejected it within this time (the worker was killed) is delivered
      again. It must exceed the longest retry countdown, or a waiting retry
      would be delivered twice (harmless for counts, wasteful).
    max_retries: retries of a failing batch before it goes to the dead letters.
    retry_backoff / retry_backoff_max: the first retry waits retry_backoff
      seconds, each next one twice as long, never more than retry_backoff_max.
    max_worker_lost: deliveries of one batch allowed to die with their worker
      (SIGKILL, out of memory) before the batch is dead-lettered.
    payload_ttl: how long a published batch's payload is kept in Redis for
      its message (claims.py); it is deleted as soon as the batch has its
      verdict, so this only bounds what a message lost outside our control
      leaves behind. It must outlive any backlog of the queue.
    group_linger: an embedded-store worker's transaction waits for batches
      still being built until its group is this old (coalesce.py): longer
      makes fewer, larger transactions under load, and delays a batch by up
      to this much while others are on their way (never one alone at rest).
    """

    visibility_timeout: float = 3600.0
    max_retries: int = 8
    retry_backoff: float = 2.0
    retry_backoff_max: float = 300.0
    max_worker_lost: int = 3
    payload_ttl: float = DEFAULT_PAYLOAD_TTL
    group_linger: float = DEFAULT_GROUP_LINGER

    ENV: ClassVar[dict[str, str]] = {
        "visibility_timeout": "TOPOLOGY_CELERY_VISIBILITY_TIMEOUT",
        "max_retries": "TOPOLOGY_INGEST_MAX_RETRIES",
        "retry_backoff": "TOPOLOGY_INGEST_RETRY_BACKOFF",
        "retry_backoff_max": "TOPOLOGY_INGEST_RETRY_BACKOFF_MAX",
        "max_worker_lost": "TOPOLOGY_INGEST_MAX_WORKER_LOST",
        "payload_ttl": "TOPOLOGY_INGEST_PAYLOAD_TTL",
        "group_linger": "TOPOLOGY_INGEST_GROUP_LINGER",
    }

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> DeliveryOptions:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, env in cls.ENV.items():
            raw = environ.get(env)
            if raw is None:
                continue
            try:
                values[name] = (
                    _non_negative_int(raw) if name.startswith("max_") else parse_duration(raw)
                )
            except ValueError as exc:
                raise SettingsError(f"{env}: {exc}") from None
        options = cls(**values)
        options.validate()
        return options

    def validate(self) -> None:
        if self.group_linger > MAX_GROUP_LINGER:
            raise SettingsError(
                f"{self.ENV['group_linger']}={self.group_linger:g}s is above"
                f" {MAX_GROUP_LINGER:g}s: a batch would wait that long for others before"
                " its transaction, far beyond the 10 s freshness of distributed ingestion"
            )
        if self.retry_backoff_max >= self.visibility_timeout:
            raise SettingsError(
                f"{self.ENV['retry_backoff_max']}={self.retry_backoff_max:g}s must be shorter"
                f" than {self.ENV['visibility_timeout']}={self.visibility_timeout:g}s, or a"
                " retry waiting for its countdown would be delivered twice"
            )
        longest = self.visibility_timeout + self.retry_span()
        if self.payload_ttl <= longest:
            raise SettingsError(
                f"{self.ENV['payload_ttl']}={self.payload_ttl:g}s must be longer than a"
                f" redelivery and every retry's countdown ({longest:g}s), or a batch's"
                " payload could expire while its message still waits"
            )

    def retry_span(self) -> float:
        """Seconds a batch can spend waiting for its retries' countdowns, all summed."""
        if self.retry_backoff <= 0:
            return 0.0
        total, n = 0.0, 0
        while n < self.max_retries and self.countdown(n) < self.retry_backoff_max:
            total += self.countdown(n)
            n += 1
        return total + (self.max_retries - n) * self.retry_backoff_max

    def countdown(self, retries: int) -> float:
        """Seconds before retry number `retries + 1` (exponential, capped)."""
        return min(self.retry_backoff * (2**retries), self.retry_backoff_max)


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"{text!r} is not a non-negative integer")
    return value


def celery_config(settings: Settings, options: DeliveryOptions) -> dict[str, Any]:
    if not settings.redis_url:
        raise SettingsError(
            "distributed ingestion needs TOPOLOGY_REDIS_URL (e.g. redis://localhost:6379/0)"
        )
    # Sweep for abandoned messages often enough that a short visibility
    # timeout (tests, demos) is honoured within about one timeout.
    restore_interval = max(1, min(10, int(options.visibility_timeout / 2)))
    return {
        "broker_url": settings.redis_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": options.visibility_timeout,
            "unacked_restore_interval": restore_interval,
            "unacked_restore_throttle": 1,
        },
        "task_default_queue": QUEUE,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # read by tasks.publish: how long a payload waits in Redis (claims.py)
        "topology_payload_ttl": options.payload_ttl,
    }


def create_app(
    settings: Settings, options: DeliveryOptions | None = None
) -> Celery:
    """A Celery app bound to settings.redis_url with the ingest task registered."""
    from topology.ingest import wirejson
    from topology.ingest.tasks import register

    wirejson.install()  # decodes batches several times faster, to the same values
    options = options or DeliveryOptions.load()
    app = Celery("topology", set_as_current=False)
    app.conf.update(celery_config(settings, options))
    register(app, settings, options)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        global app
        app = create_app(Settings.load(), DeliveryOptions.load())
        return app
    raise AttributeError(name)


class EvictionPolicyError(RuntimeError):
    """Redis may evict keys, which would silently drop queued batches."""


def check_noeviction(client: Any, url: str) -> None:
    """Raise EvictionPolicyError unless Redis at `url` runs maxmemory-policy noeviction."""
    import redis

    try:
        reply = client.config_get("maxmemory-policy")
    except redis.RedisError as exc:
        raise EvictionPolicyError(
            f"cannot read maxmemory-policy of the Redis at {url} ({exc}); the worker needs"
            " 'CONFIG GET maxmemory-policy' to confirm that queued batches cannot be evicted"
        ) from exc
    policy = reply.get("maxmemory-policy") if isinstance(reply, dict) else None
    if isinstance(policy, bytes):
        policy = policy.decode()
    if policy != "noeviction":
        raise EvictionPolicyError(
            f"the Redis at {url} has maxmemory-policy {policy!r}: it may evict queued batches"
            " and dead letters. Set it to noeviction (redis-cli CONFIG SET maxmemory-policy"
            " noeviction, and 'maxmemory-policy noeviction' in redis.conf) and start again"
        )
