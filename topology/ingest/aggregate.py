"""Aggregation: resolved calls into one CallBucket row per key per batch.

The hot path of ingestion. Rows are keyed by a plain tuple (client, server,
bucket start, protocol, method, path template) and accumulated in plain lists
inside one loop with everything bound to locals; `CallBucket` objects are made
once per row at the end. The result is exactly what `CallBucket.record` would
give for the same events (a test holds the two together); calling `record`
per event costs about twice as much. The per-edge template cap runs after the
batch is folded, on distinct rows rather than on events.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable

from topology.histogram import BIN_COUNT, BOUNDS_MS
from topology.ingest.paths import OVERFLOW_TEMPLATE
from topology.ingest.placed import Placed, RowKey
from topology.ingest.records import Call
from topology.ingest.templates import TemplateCap
from topology.model import MAX_EXEMPLARS, STATUS_CLASSES, CallBucket, status_class

# client, server, naming, timestamp, protocol, method, path template, duration ms,
# error, status, trace id
Event = tuple[str, str, str, float, str, str, str, float, bool, "int | None", str]
# A call of a batch -> (client id, server id, naming), or None: it does not count.
Resolve = Callable[[Call], "tuple[str, str, str] | None"]

# Accumulator slots, in the order of the CallBucket fields they become (`_buckets`).
_REQUESTS, _ERRORS, _LATENCY, _HIST, _STATUS, _EXEMPLARS, _NAMING = range(7)
# Status code (0..999, the schema's range) -> status class index.
_STATUS_INDEX = tuple(status_class(code) for code in range(1000))


class Aggregator:
    def __init__(self, width: float) -> None:
        self.width = int(width)
        self._acc: dict[RowKey, list] = {}

    def add(self, *event: object) -> None:
        self.add_all((event,))  # type: ignore[arg-type]

    def add_all(self, events: Iterable[Event]) -> int:
        """Fold events into the rows; returns how many were added."""
        acc = self._acc
        get = acc.get
        width = self.width
        bounds = BOUNDS_MS
        bins, classes, max_exemplars = BIN_COUNT, STATUS_CLASSES, MAX_EXEMPLARS
        status_index = _STATUS_INDEX
        n = 0
        for client, server, naming, ts, protocol, method, path, ms, error, status, trace in events:
            n += 1
            start = int(ts) // width * width  # timestamps are >= 0 (schema)
            key = (client, server, start, protocol, method, path)
            row = get(key)
            if row is None:
                row = acc[key] = [0, 0, 0.0, [0] * bins, [0] * classes, [], naming]
            else:
                row[_NAMING] = naming
            row[_REQUESTS] += 1
            if error:
                row[_ERRORS] += 1
            row[_LATENCY] += ms
            row[_HIST][bisect_left(bounds, ms)] += 1
            row[_STATUS][0 if status is None else status_index[status]] += 1
            if trace:
                exemplars = row[_EXEMPLARS]
                if len(exemplars) < max_exemplars and trace not in exemplars:
                    exemplars.append(trace)
        return n

    def add_calls(
        self, calls: Iterable[Call], resolve: Resolve, fold: Callable[[str], str]
    ) -> int:
        """Resolve, fold and aggregate calls of the batch format in one loop.

        The same rows as `add_all` over the events the calls become, without
        making an event per call (the ingest hot path). Returns how many counted.
        """
        acc = self._acc
        get = acc.get
        width = self.width
        bounds = BOUNDS_MS
        bins, classes, max_exemplars = BIN_COUNT, STATUS_CLASSES, MAX_EXEMPLARS
        status_index = _STATUS_INDEX
        n = 0
        for call in calls:
            ends = resolve(call)
            if ends is None:
                continue
            n += 1
            client, server, naming = ends
            key = (client, server, int(call.timestamp) // width * width, call.protocol,
                   call.method, fold(call.path))
            row = get(key)
            if row is None:
                row = acc[key] = [0, 0, 0.0, [0] * bins, [0] * classes, [], naming]
            else:
                row[_NAMING] = naming
            row[_REQUESTS] += 1
            status = call.status
            if status is None:
                row[_STATUS][0] += 1
                if call.error:
                    row[_ERRORS] += 1
            else:
                row[_STATUS][status_index[status]] += 1
                if status >= 500 or call.error:
                    row[_ERRORS] += 1
            ms = call.duration_ms
            row[_LATENCY] += ms
            row[_HIST][bisect_left(bounds, ms)] += 1
            trace = call.trace_id
            if trace:
                exemplars = row[_EXEMPLARS]
                if len(exemplars) < max_exemplars and trace not in exemplars:
                    exemplars.append(trace)
        return n

    def __len__(self) -> int:
        return len(self._acc)

    def take_capped(self, cap: TemplateCap) -> list[CallBucket]:
        """`capped`, and the rows are forgotten: the CallBuckets share their counters,
        and a coalesced group's keys and accumulators (about 3 MB for 10,000 rows) are
        not kept while the next group gathers during the write."""
        rows = self.capped(cap)
        self._acc = {}
        return rows

    def place(
        self, calls: Iterable[Call], resolve: Resolve, fold: Callable[[str], str]
    ) -> Placed:
        """What `add_calls` would fold, each call placed in its row, for `add_placed`.

        Resolving, folding the path and placing (row key, histogram bin, status
        class) can then run in another process (offload.py), and `add_placed`
        over the result gives exactly the rows `add_calls` gives over the calls:
        the same values in the same order, so even latency sums round the same
        way (a property test holds them together).
        """
        width = self.width
        bounds = BOUNDS_MS
        status_index = _STATUS_INDEX
        placed = Placed()
        keys: dict[RowKey, int] = {}
        namings: dict[str, int] = {}
        # One object per distinct string of the keys (decoding, resolving and folding
        # make one per call), so pickling sends each once.
        words: dict[str, str] = {}
        word = words.setdefault
        key_index, naming_index = placed.key_index.append, placed.naming_index.append
        durations, errors = placed.durations.append, placed.errors.append
        classes, bins, traces = placed.classes.append, placed.bins.append, placed.traces
        n = 0
        for call in calls:
            ends = resolve(call)
            if ends is None:
                continue
            client, server, naming = ends
            protocol, method = call.protocol, call.method
            path = fold(call.path)
            key = (client, server, int(call.timestamp) // width * width, protocol, method,
                   path)
            k = keys.get(key)
            if k is None:  # the first of its row: its strings are the ones sent
                key = (word(client, client), word(server, server), key[2],
                       word(protocol, protocol), word(method, method), word(path, path))
                k = keys[key] = len(keys)
            key_index(k)
            k = namings.get(naming)
            if k is None:
                k = namings[naming] = len(namings)
            naming_index(k)
            status = call.status
            if status is None:
                errors(1 if call.error else 0)
                classes(0)
            else:
                errors(1 if status >= 500 or call.error else 0)
                classes(status_index[status])
            ms = call.duration_ms
            durations(ms)
            bins(bisect_left(bounds, ms))
            trace = call.trace_id
            if trace:
                traces[n] = trace
            n += 1
        placed.keys = list(keys)
        placed.namings = list(namings)
        return placed

    def add_placed(self, placed: Placed) -> int:
        """Fold calls placed by `place` (of an Aggregator of the same width).

        The rows of the placed keys are looked up once, not once per call; a
        row's naming is its last call's (what setting it per call leaves), and
        exemplars are added in call order after the counts: the same rows as
        one loop doing everything per call, for about half the time.
        """
        acc = self._acc
        get = acc.get
        bins, classes, max_exemplars = BIN_COUNT, STATUS_CLASSES, MAX_EXEMPLARS
        namings, key_index = placed.namings, placed.key_index
        rows = []
        for key in placed.keys:
            row = get(key)
            if row is None:
                row = acc[key] = [0, 0, 0.0, [0] * bins, [0] * classes, [], None]
            rows.append(row)
        for k, ms, error, class_index, bin_index in zip(
                key_index, placed.durations, placed.errors, placed.classes, placed.bins,
                strict=True):
            row = rows[k]
            row[_REQUESTS] += 1
            if error:
                row[_ERRORS] += 1
            row[_LATENCY] += ms
            row[_HIST][bin_index] += 1
            row[_STATUS][class_index] += 1
        # the last naming index of each key (a dict keeps the last value per key)
        for k, naming in dict(zip(key_index, placed.naming_index, strict=True)).items():
            rows[k][_NAMING] = namings[naming]
        for call, trace in placed.traces.items():  # in call order, as `place` fills it
            if trace:
                exemplars = rows[key_index[call]][_EXEMPLARS]
                if len(exemplars) < max_exemplars and trace not in exemplars:
                    exemplars.append(trace)
        return len(key_index)

    def buckets(self) -> list[CallBucket]:
        return self._buckets(self._acc)

    def _buckets(self, acc: dict[RowKey, list]) -> list[CallBucket]:
        width = self.width
        # positional: about a third cheaper than keywords for the ~10,000 rows of a group
        return [
            CallBucket(client, server, start, width, protocol, method, path, *row)
            for (client, server, start, protocol, method, path), row in acc.items()
        ]

    def capped(self, cap: TemplateCap) -> list[CallBucket]:
        """The rows, with templates an edge may not keep folded into `{overflow}`.

        Works on the row keys: templates are gathered per edge, the cap asked
        once per batch, and rows are re-keyed (and merged) only when an edge
        has templates refused.
        """
        by_edge: dict[tuple[str, str], set[str]] = {}
        for client, server, _, _, _, path in self._acc:
            if path:
                paths = by_edge.get((client, server))
                if paths is None:
                    paths = by_edge[(client, server)] = set()
                paths.add(path)
        if not by_edge:
            return self.buckets()
        names = {edge: f"{edge[0]}|{edge[1]}" for edge in by_edge}
        wanted = {names[edge]: paths for edge, paths in by_edge.items()}
        refused: dict[tuple[str, str], set[str]] = {}
        if len(wanted) == len(by_edge):
            left_by_name = cap.refuse(wanted)
            for edge, name in names.items():
                left = left_by_name.get(name)
                if left:
                    refused[edge] = left
        else:  # two edges share a name ("|" in an id): as they always were decided
            admitted = cap.admit(wanted)
            for edge, paths in by_edge.items():
                left = paths - admitted.get(names[edge], set())
                if left:
                    refused[edge] = left
        if not refused:
            return self.buckets()
        out: dict[RowKey, list] = {}
        for key, row in self._acc.items():
            client, server, start, protocol, method, path = key
            if path and path in refused.get((client, server), ()):
                key = (client, server, start, protocol, method, OVERFLOW_TEMPLATE)
            into = out.get(key)
            if into is None:
                out[key] = row
            else:
                _merge(into, row)
        return self._buckets(out)


def _merge(into: list, row: list) -> None:
    """Add accumulator `row` into `into`, as CallBucket.merge does."""
    into[_REQUESTS] += row[_REQUESTS]
    into[_ERRORS] += row[_ERRORS]
    into[_LATENCY] += row[_LATENCY]
    for i, count in enumerate(row[_HIST]):
        into[_HIST][i] += count
    for i, count in enumerate(row[_STATUS]):
        into[_STATUS][i] += count
    exemplars = into[_EXEMPLARS]
    for trace in row[_EXEMPLARS]:
        if len(exemplars) >= MAX_EXEMPLARS:
            break
        if trace not in exemplars:
            exemplars.append(trace)
    into[_NAMING] = row[_NAMING] or into[_NAMING]
