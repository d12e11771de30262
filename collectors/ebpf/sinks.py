"""Where batches go: the API (`POST /v1/events`), the Celery ingest task, or JSON lines."""

from __future__ import annotations

import json
import sys
import threading
import urllib.error
import urllib.request
from typing import IO, Any, Protocol

from topology.ingest.celery_app import QUEUE as INGEST_QUEUE
from topology.ingest.celery_app import TASK_NAME as INGEST_TASK


class SinkError(Exception):
    """Delivery failed. permanent=True: retrying the same batch cannot succeed."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Sink(Protocol):
    def send(self, batch: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class HttpSink:
    def __init__(self, api: str, timeout: float = 10.0, token: str | None = None) -> None:
        self.url = api.rstrip("/") + "/v1/events"
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def send(self, batch: dict[str, Any]) -> None:
        body = json.dumps(batch, separators=(",", ":")).encode()
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            permanent = 400 <= exc.code < 500 and exc.code not in (408, 429)
            raise SinkError(f"POST {self.url}: HTTP {exc.code}", permanent=permanent) from None
        except (urllib.error.URLError, OSError) as exc:
            raise SinkError(f"POST {self.url}: {exc}") from None

    def close(self) -> None:
        return None


class CelerySink:
    """Publishes to the ingest queue by task name (no ingest code runs in the agent);
    the task id is the batch id."""

    def __init__(self, broker: str) -> None:
        from celery import Celery

        self.broker = broker
        self.app = Celery("topology-agent", broker=broker, set_as_current=False)
        self.app.conf.broker_connection_retry_on_startup = False
        self.app.conf.broker_connection_max_retries = 0
        self.app.conf.broker_connection_timeout = 5
        # Fail fast when the broker is down: the shipper retries with backoff and
        # keeps the backlog bounded, kombu must not block the batch meanwhile.
        self.app.conf.broker_transport_options = {"max_retries": 0}

    def send(self, batch: dict[str, Any]) -> None:
        try:
            self.app.send_task(
                INGEST_TASK, args=[batch], queue=INGEST_QUEUE, task_id=batch["batch_id"],
                retry=False,
            )
        except Exception as exc:  # kombu raises transport-specific errors
            raise SinkError(f"publish to {self.broker}: {exc!r}") from None

    def close(self) -> None:
        self.app.close()


class JsonLinesSink:
    """One batch per line, to a file or standard output (`--output -`)."""

    def __init__(self, path: str) -> None:
        self._own = path != "-"
        self._file: IO[str] = open(path, "a") if self._own else sys.stdout  # noqa: SIM115
        self._lock = threading.Lock()

    def send(self, batch: dict[str, Any]) -> None:
        with self._lock:
            self._file.write(json.dumps(batch, separators=(",", ":")) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._own:
            self._file.close()
