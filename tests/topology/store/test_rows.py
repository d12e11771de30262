"""Merging a batch by key into the parameter rows both stores write (topology/store/rows.py)."""

from __future__ import annotations

import pytest

from topology import histogram
from topology.model import (
    HOUR,
    KIND_DEPLOYMENT,
    MINUTE,
    NAMING_DNS,
    NAMING_HOST,
    NAMING_WORKLOAD,
    Batch,
    CallBucket,
    Service,
)
from topology.store import rows

T0 = 1_700_000_040  # a minute boundary, 40 minutes into its hour
HOUR0 = T0 - T0 % HOUR


def svc(sid: str, seen: int, name: str = "", **labels: str) -> Service:
    return Service(id=sid, name=name or sid, kind=KIND_DEPLOYMENT, namespace="ns",
                   cluster="c", labels=labels, seen=seen)


def call(client: str = "a", server: str = "b", bucket: int = T0, *, width: int = MINUTE,
         protocol: str = "http", requests: int = 1, errors: int = 0, latency: float = 10.0,
         exemplars: tuple[str, ...] = (), naming: str = NAMING_WORKLOAD) -> CallBucket:
    hist = histogram.empty()
    hist[histogram.bin_index(latency)] = requests
    status = [0, 0, requests - errors, 0, 0, errors]
    return CallBucket(client=client, server=server, bucket=bucket, width=width,
                      protocol=protocol, method="GET", path="/x", requests=requests,
                      errors=errors, latency_sum_ms=latency * requests, histogram=hist,
                      status_classes=status, exemplars=list(exemplars), naming=naming)


SERVICE_CASES = {
    "single": (
        [svc("a", 100, env="prod")],
        [("a", "a", 100, 100, ["env=prod"])],
    ),
    "same_id_latest_mention_describes_it_seen_range_widens": (
        [svc("a", 200, "new", tier="1"), svc("a", 100, "old", env="dev"), svc("a", 150, "mid")],
        [("a", "new", 100, 200, ["tier=1"])],
    ),
    "latest_labels_replace_earlier_ones": (
        [svc("a", 300, env="prod"), svc("a", 100, env="dev", team="web")],
        [("a", "a", 100, 300, ["env=prod"])],
    ),
    "sorted_by_id": (
        [svc("c", 1), svc("a", 2), svc("b", 3), svc("a", 1)],
        [("a", "a", 1, 2, []), ("b", "b", 3, 3, []), ("c", "c", 1, 1, [])],
    ),
}


@pytest.mark.parametrize("case", sorted(SERVICE_CASES))
def test_merge_services(case: str) -> None:
    services, expected = SERVICE_CASES[case]
    merged = rows.merge_services(services)
    assert list(merged) == sorted(merged)
    table = list(merged.values())
    assert [(r["id"], r["name"], r["first_seen"], r["last_seen"], r["labels"])
            for r in table] == expected
    assert all(set(r) == {"id", "name", "namespace", "cluster", "kind", "labels",
                          "first_seen", "last_seen"} for r in table)


SAME_SEEN = [svc("a", 5, "first", env="x"), svc("a", 5, "second", env="y")]


@pytest.mark.parametrize("case", [*sorted(SERVICE_CASES), "equal_seen"])
def test_the_embedded_writers_service_states_are_the_merged_rows(case: str) -> None:
    """`ladybug_pairs.service_states` (no dict per mention, labels formatted once per
    change) must describe every service as `merge_services` does."""
    from topology.store import ladybug_pairs

    services = SAME_SEEN if case == "equal_seen" else SERVICE_CASES[case][0]
    known = ladybug_pairs.Known()
    for _ in range(2):  # the second time from the remembered labels
        states = ladybug_pairs.service_states(services, known)
        assert states == {sid: (r["name"], r["namespace"], r["cluster"], r["kind"],
                                tuple(r["labels"]), r["first_seen"], r["last_seen"])
                          for sid, r in rows.merge_services(services).items()}


# Stored: a (name "a", labels env=prod, seen 100..200) and b (seen 100..100).
UNSETTLED_CASES = {
    "as_stored_inside_the_seen_range": ([svc("a", 150, env="prod")], []),
    "at_both_ends_of_the_range": ([svc("a", 100, env="prod"), svc("a", 200, env="prod")], []),
    "seen_after_the_range": ([svc("a", 250, env="prod")], ["a"]),
    "seen_before_the_range": ([svc("a", 50, env="prod")], ["a"]),
    "renamed": ([svc("a", 150, "new", env="prod")], ["a"]),
    "labels_changed": ([svc("a", 150, env="dev")], ["a"]),
    "labels_added": ([svc("a", 150, env="prod", team="web")], ["a"]),
    "unknown_id": ([svc("z", 150)], ["z"]),
    "one_changed_mention_keeps_every_mention_of_its_id": (
        [svc("a", 150, env="prod"), svc("a", 120, "old", env="prod"), svc("b", 100)],
        ["a", "a"]),
}


@pytest.mark.parametrize("case", sorted(UNSETTLED_CASES))
def test_unsettled_drops_only_services_the_batch_cannot_change(case: str) -> None:
    """`ladybug_pairs.unsettled` skips the services whose every mention matches what is
    stored; an id with one changing mention keeps all of them (the latest describes it)."""
    from topology.store import ladybug_pairs

    known = ladybug_pairs.Known()
    stored = [svc("a", 100, env="prod"), svc("a", 200, env="prod"), svc("b", 100)]
    known.services.update(ladybug_pairs.service_states(stored, known))
    mentions, kept = UNSETTLED_CASES[case]
    assert [s.id for s in ladybug_pairs.unsettled(mentions, known)] == kept


def test_merge_services_leaves_inputs_alone() -> None:
    first = svc("a", 100, env="dev")
    rows.merge_services([first, svc("a", 200, "renamed", env="prod")])
    assert (first.name, dict(first.labels), first.seen) == ("a", {"env": "dev"}, 100)


LABEL_CASES = {
    "empty": ({}, []),
    "sorted_key_value": ({"tier": "1", "env": "prod"}, ["env=prod", "tier=1"]),
    "value_with_equals": ({"slo": "p99=200ms"}, ["slo=p99=200ms"]),
}


@pytest.mark.parametrize("case", sorted(LABEL_CASES))
def test_labels_round_trip(case: str) -> None:
    labels, expected = LABEL_CASES[case]
    assert rows.labels_list(labels) == expected
    assert rows.labels_dict(expected) == labels


CALL_CASES = {
    "distinct_keys_kept": (
        [call(bucket=T0), call(bucket=T0 + MINUTE)],
        [(T0, 1, 0, ()), (T0 + MINUTE, 1, 0, ())],
    ),
    "same_key_counters_added": (
        [call(requests=2, errors=1), call(requests=3, errors=2)],
        [(T0, 5, 3, ())],
    ),
    "exemplars_unioned_up_to_five": (
        [call(exemplars=("t1", "t2", "t3")), call(exemplars=("t3", "t4", "t5", "t6"))],
        [(T0, 2, 0, ("t1", "t2", "t3", "t4", "t5"))],
    ),
    "sorted_by_key": (
        [call(client="z"), call(client="a"), call(client="m")],
        [(T0, 1, 0, ())] * 3,
    ),
}


@pytest.mark.parametrize("case", sorted(CALL_CASES))
def test_merge_buckets(case: str) -> None:
    calls, expected = CALL_CASES[case]
    merged = rows.merge_buckets(calls)
    assert [(c.bucket, c.requests, c.errors, tuple(c.exemplars)) for c in merged.values()] \
        == expected
    assert list(merged) == sorted(merged) == [c.key for c in merged.values()]
    assert sum(sum(c.histogram) for c in merged.values()) == sum(c.requests for c in calls)
    assert sum(c.status_classes[5] for c in merged.values()) == sum(c.errors for c in calls)


def test_merge_buckets_adds_histograms_elementwise_and_leaves_inputs_alone() -> None:
    fast, slow = call(latency=1.0, requests=2), call(latency=900.0, requests=3)
    (merged,) = rows.merge_buckets([fast, slow]).values()
    expected = histogram.empty()
    expected[histogram.bin_index(1.0)] = 2
    expected[histogram.bin_index(900.0)] = 3
    assert merged.histogram == expected
    assert merged.latency_sum_ms == pytest.approx(2 * 1.0 + 3 * 900.0)
    assert fast.requests == 2 and sum(fast.histogram) == 2


def test_bucket_row_has_the_stored_properties() -> None:
    original = call(exemplars=("t1",), errors=1, requests=3, naming=NAMING_DNS)
    row = rows.bucket_row(original)
    assert row["key"] == original.key
    assert set(row) == {"key", "client", "server", "width", "bucket", "protocol", "method",
                        "path", "requests", "errors", "latency_sum", "hist", "status",
                        "exemplars", "naming"}
    assert (row["requests"], row["errors"], row["status"], row["exemplars"]) == \
        (3, 1, [0, 0, 2, 0, 0, 1], ["t1"])


PAIR_CASES = {
    "one_bucket": (
        [call()],
        [("a", "b", T0, T0 + MINUTE, ["http"], NAMING_WORKLOAD)],
    ),
    "span_and_sorted_protocols": (
        [call(bucket=T0 + 120, protocol="http"), call(bucket=T0, protocol="grpc"),
         call(bucket=T0 + 60, protocol="http")],
        [("a", "b", T0, T0 + 180, ["grpc", "http"], NAMING_WORKLOAD)],
    ),
    "hour_bucket_end_counts": (
        [call(bucket=T0), call(bucket=HOUR0, width=HOUR)],
        [("a", "b", HOUR0, HOUR0 + HOUR, ["http"], NAMING_WORKLOAD)],
    ),
    "pairs_sorted_by_client_then_server": (
        [call("b", "a"), call("a", "c"), call("a", "b")],
        [("a", "b", T0, T0 + 60, ["http"], NAMING_WORKLOAD),
         ("a", "c", T0, T0 + 60, ["http"], NAMING_WORKLOAD),
         ("b", "a", T0, T0 + 60, ["http"], NAMING_WORKLOAD)],
    ),
}


@pytest.mark.parametrize("case", sorted(PAIR_CASES))
def test_pair_rows(case: str) -> None:
    calls, expected = PAIR_CASES[case]
    table = rows.pair_rows(rows.merge_buckets(calls).values())
    assert [(r["client"], r["server"], r["first_seen"], r["last_seen"], r["protocols"],
             r["naming"]) for r in table] == expected


ADD_CASES = {
    "service_widens_seen_takes_incoming_fields": (
        rows.add_service_rows,
        {"id": "a", "name": "old", "labels": ["env=dev"], "first_seen": 50, "last_seen": 90},
        {"id": "a", "name": "new", "labels": ["env=prod"], "first_seen": 70, "last_seen": 80},
        {"id": "a", "name": "new", "labels": ["env=prod"], "first_seen": 50, "last_seen": 90},
    ),
    "pair_widens_seen_unions_protocols": (
        rows.add_pair_rows,
        {"first_seen": 60, "last_seen": 120, "protocols": ["http"], "naming": NAMING_HOST},
        {"first_seen": 0, "last_seen": 60, "protocols": ["grpc", "http"], "naming": NAMING_DNS},
        {"first_seen": 0, "last_seen": 120, "protocols": ["grpc", "http"],
         "naming": NAMING_DNS},
    ),
    "bucket_adds_counters_and_lists": (
        rows.add_bucket_rows,
        {"key": "k", "requests": 2, "errors": 1, "latency_sum": 1.5, "hist": [1, 1],
         "status": [0, 1, 1], "exemplars": ["t1", "t2", "t3", "t4"], "naming": NAMING_HOST},
        {"key": "k", "requests": 3, "errors": 0, "latency_sum": 2.0, "hist": [0, 3],
         "status": [3, 0, 0], "exemplars": ["t2", "t5", "t6"], "naming": NAMING_DNS},
        {"key": "k", "requests": 5, "errors": 1, "latency_sum": 3.5, "hist": [1, 4],
         "status": [3, 1, 1], "exemplars": ["t1", "t2", "t3", "t4", "t5"],
         "naming": NAMING_DNS},
    ),
}


@pytest.mark.parametrize("case", sorted(ADD_CASES))
def test_add_rows(case: str) -> None:
    add, stored, incoming, expected = ADD_CASES[case]
    assert add(stored, incoming) == expected


def test_roll_up_rekeys_to_the_hour_and_merges() -> None:
    minutes = [call(bucket=HOUR0 + 60 * i, requests=i + 1, exemplars=(f"t{i}",))
               for i in range(7)] + [call(bucket=HOUR0 + HOUR, requests=100)]
    rolled = rows.roll_up([rows.bucket_row(m) for m in minutes], HOUR)
    assert [(r["bucket"], r["width"], r["requests"]) for r in rolled] == [
        (HOUR0, HOUR, sum(range(1, 8))), (HOUR0 + HOUR, HOUR, 100)]
    assert rolled[0]["exemplars"] == ["t0", "t1", "t2", "t3", "t4"]
    expected_key = call(bucket=HOUR0, width=HOUR).key
    assert rolled[0]["key"] == expected_key
    assert sum(rolled[0]["hist"]) == rolled[0]["requests"]


FRESH_CASES = {
    "all_new": (["a", "b"], set(), [True, True]),
    "applied_before": (["a", "b", "c"], {"b"}, [True, False, True]),
    "repeated_in_call": (["a", "b", "a", "a"], set(), [True, True, False, False]),
    "applied_and_repeated": (["b", "a", "b"], {"b"}, [False, True, False]),
    "empty": ([], {"a"}, []),
}


@pytest.mark.parametrize("case", sorted(FRESH_CASES))
def test_fresh_keeps_first_unapplied_occurrence(case: str) -> None:
    ids, applied, expected = FRESH_CASES[case]
    assert rows.fresh([Batch(i) for i in ids], applied) == expected


def test_chosen_concatenates_the_kept_batches_in_order() -> None:
    first = Batch("1", [svc("a", T0)], [call("a", "b")])
    skipped = Batch("2", [svc("z", T0)], [call("z", "b")])
    last = Batch("3", [svc("b", T0)], [call("b", "a"), call("a", "b")])
    services, calls = rows.chosen([first, skipped, last], [True, False, True])
    assert [s.id for s in services] == ["a", "b"]
    assert [(c.client, c.server) for c in calls] == [("a", "b"), ("b", "a"), ("a", "b")]
