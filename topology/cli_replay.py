"""`topology replay FILE...`: load recorded batches into the store, with a progress bar.

A file holds JSON lines (one record per line) or one JSON document (an object
or a list of them), optionally gzipped (.gz). A record is either a collector
batch (it has "batch_id") or an OTLP JSON export request (it has
"resourceSpans"), which the OTLP receiver turns into batches (named by a hash
of their calls and a count). Every batch goes through the same `Ingestor` as live
traffic, so replaying a file twice counts it once. Invalid records are
reported with file and line and skipped; the exit status is 1 when any was.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from topology.cli_options import open_initialised, settings_from, store_flags
from topology.ingest.pipeline import Ingestor, InvalidBatch
from topology.settings import Settings

if TYPE_CHECKING:  # OTLP's protobufs only for a replay: every command imports this module
    from topology.ingest.otlp import OtlpReceiver


class Record:
    def __init__(self, where: str, data: Any) -> None:
        self.where = where
        self.data = data


def read_records(path: Path) -> Iterator[Record]:
    """The records of one file, each with its place ("file:line") for messages."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, list):
        for index, item in enumerate(whole):
            yield Record(f"{path}[{index}]", item)
        return
    if whole is not None:
        yield Record(str(path), whole)
        return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield Record(f"{path}:{number}", json.loads(line))
        except json.JSONDecodeError as exc:
            yield Record(f"{path}:{number}", InvalidBatch(f"not JSON: {exc}"))


class Replayer:
    """Feeds records to an Ingestor and counts what happened."""

    def __init__(self, ingestor: Ingestor, settings: Settings) -> None:
        self.ingestor = ingestor
        self.settings = settings
        self.applied = self.duplicates = 0
        self.errors: list[str] = []
        self._otlp: OtlpReceiver | None = None
        self._seen: dict[str, int] = {}

    def replay(self, record: Record) -> None:
        from topology.ingest.otlp import InvalidTraces

        try:
            for payload in self._batches(record.data):
                if self.ingestor.ingest(payload):
                    self.applied += 1
                else:
                    self.duplicates += 1
        except (InvalidBatch, InvalidTraces) as exc:
            self.errors.append(f"{record.where}: {exc}")

    def _batches(self, data: Any) -> list[Mapping[str, Any]]:
        if isinstance(data, InvalidBatch):
            raise data
        if isinstance(data, Mapping) and "resourceSpans" in data:
            if self._otlp is None:
                from topology.ingest.otlp import OtlpReceiver

                # A still clock: lone spans wait for the end of the replay (any file
                # may hold their peer), and the batches come out the same every time.
                self._otlp = OtlpReceiver(agent="replay", clock=lambda: 0.0)
            self._otlp.accept(json.dumps(data).encode(), "application/json")
            return [self._named(b) for b in self._otlp.flush()]
        return [data]

    def finish(self) -> None:
        """Write what the OTLP receiver still holds (spans waiting for their peer)."""
        if self._otlp is not None:
            for payload in self._otlp.flush(float("inf")):
                self.replay(Record("(pending OTLP spans)", self._named(payload)))

    def _named(self, payload: dict[str, Any]) -> dict[str, Any]:
        """An OTLP batch named by its calls and how often such a batch came before,
        so replaying the same files again counts once and equal batches all count."""
        calls = json.dumps(payload["calls"], sort_keys=True).encode()
        digest = hashlib.sha256(calls).hexdigest()[:40]
        seen = self._seen[digest] = self._seen.get(digest, -1) + 1
        return {**payload, "batch_id": f"replay-otlp-{digest}-{seen}"}


@click.command("replay")
@store_flags
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.pass_context
def replay(ctx: click.Context, files: tuple[Path, ...], quiet: bool, **flags: object) -> None:
    """Feed recorded batches (collector JSON lines or OTLP JSON) into the store."""
    from tqdm import tqdm

    settings = settings_from(ctx, **flags)
    store = open_initialised(settings)
    try:
        ingestor = Ingestor(store, settings)
        replayer = Replayer(ingestor, settings)
        for path in files:
            try:
                records = list(read_records(path))
            except (OSError, UnicodeDecodeError, gzip.BadGzipFile, EOFError) as exc:
                replayer.errors.append(f"{path}: cannot read it: {exc}")
                continue
            for record in tqdm(records, desc=path.name, unit="record", disable=quiet):
                replayer.replay(record)
        replayer.finish()
    finally:
        store.close()
    for message in replayer.errors:
        click.echo(f"skipped {message}", err=True)
    click.echo(f"replayed {replayer.applied} batch(es), {replayer.duplicates} already applied,"
               f" {len(replayer.errors)} skipped ({ingestor.stats.counted} calls counted)")
    if replayer.errors:
        ctx.exit(1)
