"""Property: however the two sides of requests are observed, each request counts at most
once, and exactly once when the side that is supposed to count was observed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from topology.ingest.pipeline import Ingestor
from topology.settings import Settings

T = 1_763_700_000.0
INSIDE = {"10.0.0.1": "web", "10.0.0.2": "api", "10.0.0.3": "legacy"}  # legacy: no agent
OUTSIDE = ["203.0.113.1", "198.51.100.2"]
ENDPOINTS = [{"ip": ip, "workload": {"namespace": "shop", "name": name, "kind": "Deployment"},
              "from": 0, "watched": name != "legacy"} for ip, name in INSIDE.items()]

_request = st.tuples(
    st.sampled_from([*INSIDE, *OUTSIDE]),            # caller
    st.sampled_from(["10.0.0.1", "10.0.0.2"]),      # callee (watched workloads)
    st.booleans(), st.booleans(),                    # client side seen, server side seen
)


@settings(max_examples=150, deadline=None)
@given(requests=st.lists(_request, max_size=30), split=st.integers(0, 30))
def test_each_request_counts_once_at_most(requests: list, split: int) -> None:
    observations, expected = [], 0
    for n, (caller, callee, client_seen, server_seen) in enumerate(requests):
        ts = T + n
        base = {"timestamp": ts, "source": {"ip": caller, "port": 40000 + n},
                "destination": {"ip": callee, "port": 80}, "protocol": "http",
                "method": "GET", "path": "/", "status": 200, "duration_ms": 1}
        watched_caller = caller in INSIDE and INSIDE[caller] != "legacy"
        client_seen = client_seen and watched_caller  # only agents see client sides
        if client_seen:
            observations.append({**base, "side": "client"})
        if server_seen:
            observations.append({**base, "side": "server"})
        counts_from = client_seen if watched_caller else server_seen
        expected += int(counts_from)
    ingestor = Ingestor(None, Settings(), None, lambda: T)  # type: ignore[arg-type]
    ingestor.build({"batch_id": "w", "agent": "watcher", "endpoints": ENDPOINTS})
    counted = 0
    for i, part in enumerate((observations[:split], observations[split:])):
        batch = ingestor.build({"batch_id": f"b{i}", "agent": f"node-{i}", "calls": part})
        counted += sum(row.requests for row in batch.calls)
    assert counted == expected
