"""The build helper's process: `python -m topology.ingest.build_helper FD`.

A worker (offload.py) starts it with one end of a socket pair as file
descriptor FD and talks to it in frames (frames.py). The first frame is
the worker's `Settings`; each later one is a job, `("payload", raw)` or
`("claim", key)`, and the helper answers each with one frame:

* `("ok", Prepared)`: the batch, as `pipeline.prepare` made it;
* `("gone", key)`: no payload stored under the claim (claims.PayloadGone);
* `("unreadable", message)`: Redis failed while reading it
  (claims.PayloadUnreadable);
* `("error", exception, traceback text)`: what `prepare` raised
  (InvalidBatch, or anything else), re-raised in the worker.

It imports only what a build needs: a Redis client, the typed records
(msgspec), resolution and the path folder. The client is redis_lite.py's,
not redis-py, which imports asyncio and ssl (18 MB of RSS, redis_lite.py),
unless the worker's URL asks for what only redis-py does (TLS, options).
Not claims.py either, whose module imports kombu (about 2.5 MB of RSS
here): the worker maps "gone" and "unreadable" to claims' exceptions, and
`schema.decode` words an undecodable payload as `claims.decode` does (both
call `schema.stored_json`).

The helper ends when the worker closes its end (EOF between jobs, or a broken
pipe when answering) and, checked every second, when the worker is gone
(its parent changed: killed, and a job stuck on Redis would never see EOF).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any

from topology import malloctune
from topology.ingest import frames, gctune, redis_lite
from topology.ingest.dns import RedisDnsStore
from topology.ingest.leases import RedisLeaseStore
from topology.ingest.paths import PathFolder
from topology.ingest.pipeline import Prepared, prepare
from topology.ingest.schema import decode
from topology.settings import Settings

ORPHAN_CHECK = 1.0  # seconds between the helper's checks that its worker lives


def redis_client(url: str) -> tuple[Any, tuple[type[Exception], ...]]:
    """A client for `url` and the errors it raises: redis_lite's where it reads the
    URL, else redis-py's."""
    try:
        return redis_lite.Client.from_url(url), (redis_lite.RedisError,)
    except ValueError:
        import redis

        return redis.Redis.from_url(url), (redis.RedisError,)


class Builder:
    """What one helper keeps between batches: Redis-backed leases and DNS answers
    (with their snapshot caches) and the path folder's memo."""

    def __init__(self, settings: Settings) -> None:
        if settings.redis_url is None:
            raise ValueError("a build helper needs the worker's Redis URL (settings.redis_url)")
        self.client, self.redis_errors = redis_client(settings.redis_url)
        self.leases = RedisLeaseStore(self.client, settings.batch_marker_retention, time.time)
        self.dns = RedisDnsStore(self.client, settings.dns_retention, time.time)
        self.folder = PathFolder()
        self.width = settings.bucket_width

    def prepare(self, raw: bytes) -> Prepared:
        return prepare(decode(raw), self.leases, self.dns, self.folder, self.width)

    def answer(self, kind: str, arg: Any) -> tuple[Any, ...]:
        """The reply to one job (the module's docstring)."""
        try:
            if kind == "payload":
                return ("ok", self.prepare(arg))
            if kind != "claim":
                raise ValueError(f"build helper: unknown job kind {kind!r}")
            try:
                raw = self.client.get(arg)
            except self.redis_errors as exc:
                return ("unreadable", f"cannot read {arg}: {exc!r}")
            if raw is None:
                return ("gone", arg)
            return ("ok", self.prepare(bytes(raw)))
        except Exception as exc:
            return ("error", exc, traceback.format_exc())


def _encoded(reply: tuple[Any, ...]) -> bytes:
    """The reply's frame; an error that does not pickle is sent as its text."""
    try:
        return frames.dumps(reply)
    except Exception as exc:
        if reply[0] == "error":
            text = f"{type(reply[1]).__name__}: {reply[1]}"
            return frames.dumps(("error", RuntimeError(text), reply[2]))
        return frames.dumps(("error", RuntimeError(f"build helper: cannot send its result: "
                                                   f"{exc!r}"), traceback.format_exc()))


def _exit_with_parent(parent: int, interval: float = ORPHAN_CHECK) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent:
            os._exit(0)


def serve(sock: socket.socket) -> None:
    """Answer the worker's jobs on `sock` until it closes its end."""
    settings = frames.loads(frames.receive(sock))
    gctune.tune()  # a decoded batch is large and acyclic, as in the worker
    builder = Builder(settings)
    while True:
        try:
            job = frames.receive(sock)
        except EOFError:
            return
        kind, arg = frames.loads(job)
        del job
        reply = _encoded(builder.answer(kind, arg))
        del arg
        try:
            frames.send(sock, reply)
        except (BrokenPipeError, ConnectionResetError):
            return  # the worker is gone


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m topology.ingest.build_helper FD (started by a worker)",
              file=sys.stderr)
        return 2
    # Ctrl-C reaches the terminal's whole process group: the worker decides when to
    # stop, and its helper finishes the batch in hand and exits on EOF.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    malloctune.tune(os.environ)  # a batch's multi-MB buffers go back to the system when freed
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True,
                     name="exit-with-worker").start()
    with socket.socket(fileno=int(args[0])) as sock:
        serve(sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
