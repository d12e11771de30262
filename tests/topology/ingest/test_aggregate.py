"""The hot aggregation loop gives exactly what CallBucket.record gives."""

from __future__ import annotations

import pickle
import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from topology.ingest.aggregate import Aggregator
from topology.ingest.paths import OVERFLOW_TEMPLATE
from topology.ingest.records import Call
from topology.ingest.templates import MemoryTemplateCap
from topology.model import CallBucket


def test_rows_equal_record_by_record() -> None:
    rng = random.Random(7)
    events = []
    for n in range(5_000):
        status = rng.choice([None, 0, 99, 101, 200, 302, 404, 500, 503, 600, 999])
        events.append((
            f"c{rng.randrange(5)}", f"s{rng.randrange(5)}", rng.choice(["workload", "dns"]),
            1_000.0 + rng.random() * 300, rng.choice(["http", "grpc"]), rng.choice(["GET", ""]),
            rng.choice(["/a", "/b/{id}", ""]), rng.choice([0.0, 0.25, 3, 7.5, 99.9, 40_000.0]),
            rng.random() < 0.1, status, rng.choice(["", "", f"t{n % 9}"]),
        ))
    aggregator = Aggregator(60)
    assert aggregator.add_all(events) == len(events)

    expected: dict[str, CallBucket] = {}
    for client, server, naming, ts, protocol, method, path, ms, error, status, trace in events:
        bucket = CallBucket(client=client, server=server, bucket=int(ts // 60) * 60, width=60,
                            protocol=protocol, method=method, path=path)
        row = expected.setdefault(bucket.key, bucket)
        row.record(ms, error=error, status=status, trace_id=trace)
        row.naming = naming
    assert {row.key: row for row in aggregator.buckets()} == expected


def test_calls_aggregate_as_their_events() -> None:
    """`add_calls` (the ingest hot path) gives the rows `add_all` gives for the same
    calls turned into events; calls that do not resolve are not counted."""
    rng = random.Random(11)
    calls = []
    for n in range(5_000):
        call = {"timestamp": 1_000.0 + rng.random() * 300, "side": "client",
                "source": {"ip": f"10.0.0.{rng.randrange(6)}"}, "destination": {"ip": "x"},
                "protocol": rng.choice(["http", "grpc"])}
        for name, values in (("method", ["GET", ""]), ("path", ["/a/1", "/b/22", ""]),
                             ("status", [0, 101, 200, 404, 500, 503, 999]),
                             ("error", [True, False]), ("duration_ms", [0.0, 3, 99.9]),
                             ("trace_id", ["", f"t{n % 9}"])):
            if rng.random() < 0.7:
                call[name] = rng.choice(values)
        calls.append(call)

    def resolve(call: Call) -> tuple[str, str, str] | None:
        ip = call.source.ip
        return None if ip.endswith(".5") else (ip, "s", "dns" if ip.endswith(".1") else "host")

    def fold(path: str) -> str:
        return path.rsplit("/", 1)[0] + "/{id}" if path else path

    fast = Aggregator(60)
    counted = fast.add_calls(msgspec.convert(calls, list[Call]), resolve, fold)
    events = []
    for call in calls:
        ends = resolve(msgspec.convert(call, Call))
        if ends is not None:
            status = call.get("status")
            events.append((*ends, call["timestamp"], call["protocol"], call.get("method", ""),
                           fold(call.get("path", "")), call.get("duration_ms", 0.0),
                           call.get("error", False) or (status is not None and status >= 500),
                           status, call.get("trace_id", "")))
    slow = Aggregator(60)
    assert counted == slow.add_all(events) < len(calls)
    assert fast.buckets() == slow.buckets()


@pytest.mark.parametrize("cap", [1, 3, 100])
def test_capped_rows_equal_buckets_merged_into_overflow(cap: int) -> None:
    rng = random.Random(cap)
    events = [(f"c{rng.randrange(3)}", "s", rng.choice(["dns", "host"]),
               1_000.0 + rng.random() * 120, "http", "GET", rng.choice(["", "/a", "/b", "/c"]),
               rng.random() * 50, False, 200, rng.choice(["", f"t{n % 13}"]))
              for n in range(2_000)]
    aggregator = Aggregator(60)
    aggregator.add_all(events)
    reference = Aggregator(60)
    reference.add_all(events)
    admitted = MemoryTemplateCap(cap).admit(
        {f"{row.client}|{row.server}": {r.path for r in reference.buckets()
                                        if (r.client, r.server) == (row.client, row.server)
                                        and r.path}
         for row in reference.buckets()})
    expected: dict[str, CallBucket] = {}
    for row in reference.buckets():
        if row.path and row.path not in admitted[f"{row.client}|{row.server}"]:
            row.path = OVERFLOW_TEMPLATE
        if row.key in expected:
            expected[row.key].merge(row)
        else:
            expected[row.key] = row
    assert {row.key: row for row in aggregator.capped(MemoryTemplateCap(cap))} == expected


def test_take_capped_gives_the_capped_rows_and_forgets_them() -> None:
    events = [(f"c{n % 3}", "s", "host", 1_000.0 + n, "http", "GET", f"/p{n % 5}", 1.0,
               False, 200, "") for n in range(300)]
    aggregator, reference = Aggregator(60), Aggregator(60)
    aggregator.add_all(events)
    reference.add_all(events)
    taken = aggregator.take_capped(MemoryTemplateCap(2))
    assert taken == reference.capped(MemoryTemplateCap(2))
    assert len(aggregator) == 0 and aggregator.buckets() == []


_floats = st.floats(min_value=0, max_value=1e6, allow_nan=False)
_call = st.fixed_dictionaries(
    {"timestamp": st.one_of(_floats, st.integers(0, 10**6)), "side": st.just("client"),
     "source": st.fixed_dictionaries({"ip": st.sampled_from(["a", "b", "c", "x"])}),
     "destination": st.fixed_dictionaries({}), "protocol": st.sampled_from(["http", "grpc"])},
    optional={"method": st.sampled_from(["GET", "POST", ""]),
              "path": st.sampled_from(["", "/a/1", "/a/2", "/b/x"]),
              "status": st.integers(0, 999),
              "error": st.booleans(),
              "duration_ms": st.one_of(_floats, st.integers(0, 10**5)),
              "trace_id": st.sampled_from(["", "t1", "t2", "t3", "t4", "t5", "t6"])})


@given(batches=st.lists(st.lists(_call, max_size=40), max_size=4))
@settings(max_examples=300, deadline=None)
def test_events_folded_later_give_the_rows_of_the_calls(batches: list[list[dict]]) -> None:
    """Calls placed by `Aggregator.place` (in a build helper, offload.py) and folded
    with `add_placed` give exactly the rows `add_calls` gives, batch after batch
    into one group: same counts, histograms, exemplars, naming, and latency sums
    to the last bit."""

    def resolve(call: Call) -> tuple[str, str, str] | None:
        ip = call.source.ip
        return None if ip == "x" else (ip, "s", "dns" if ip == "a" else "host")

    def fold(path: str) -> str:
        return path.rsplit("/", 1)[0] + "/{id}" if path else path

    direct, later = Aggregator(60), Aggregator(60)
    for plain in batches:
        calls = msgspec.convert(plain, list[Call])
        counted = direct.add_calls(calls, resolve, fold)
        placed = Aggregator(60).place(calls, resolve, fold)
        assert later.add_placed(pickle.loads(pickle.dumps(placed))) == counted
    assert [repr(row) for row in later.buckets()] == [repr(row) for row in direct.buckets()]
