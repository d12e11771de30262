"""A golden shop scenario as collector batches, loaded through real ingestion.

Namespaces `shop` (frontend, checkout, payments, recommendations), `data`
(postgres) and `ops` (auditor). Externals: api.stripe.com named by the HTTP
Host header, mail.example.com named by a DNS answer, an IP nobody names
(Unknown External Service), and callers from outside (External Clients).
Window A is [T0, T0 + 600), window B [T0 + 600, T0 + 1200).
"""

from __future__ import annotations

from typing import Any

from topology.ingest.pipeline import Ingestor
from topology.settings import Settings
from topology.store.base import GraphStore

T0 = 1_763_712_000
A = (T0, T0 + 600)
B = (T0 + 600, T0 + 1200)
NOW = T0 + 1200


def _wl(name: str, namespace: str, kind: str = "Deployment", **labels: str) -> dict:
    return {"cluster": "prod", "namespace": namespace, "name": name, "kind": kind,
            "labels": labels}


FRONTEND = _wl("frontend", "shop", team="web")
CHECKOUT = _wl("checkout", "shop", team="shop")
PAYMENTS = _wl("payments", "shop", **{"team": "payments", "topology.io/slo-p99-ms": "150"})
RECOMMEND = _wl("recommendations", "shop", team="web")
POSTGRES = _wl("postgres", "data", "StatefulSet", team="data")
AUDITOR = _wl("auditor", "ops", team="sec")
IPS = {"frontend": "10.0.0.1", "checkout": "10.0.0.2", "payments": "10.0.0.3",
       "recommendations": "10.0.0.4", "postgres": "10.0.1.1", "auditor": "10.0.2.1"}
WORKLOADS = (FRONTEND, CHECKOUT, PAYMENTS, RECOMMEND, POSTGRES, AUDITOR)
STRIPE_IP, MAIL_IP, UNKNOWN_IP, OUTSIDE_IP = "52.1.1.1", "203.0.113.7", "198.51.100.9", "8.8.4.4"


def sid(workload: dict) -> str:
    return f"k8s:prod/{workload['namespace']}/{workload['kind']}/{workload['name']}"


STRIPE_ID, MAIL_ID = "external:api.stripe.com", "external:mail.example.com"
UNKNOWN_ID, CLIENTS_ID = "external:unknown", "external:clients"


def _calls(source: dict | None, dest: dict | str, start: int, count: int, *, errors: int = 0,
           ms: float, protocol: str = "http", method: str = "GET", path: str = "",
           status: int | None = 200, error_status: int | None = 500, host: str = "",
           trace: str = "", side: str = "client") -> list[dict]:
    calls = []
    for i in range(count):
        error = i < errors
        call: dict[str, Any] = {
            "timestamp": start + 1 + (i % 50), "side": side, "protocol": protocol,
            "source": ({"ip": OUTSIDE_IP} if source is None
                       else {"ip": IPS[source["name"]], "workload": source}),
            "destination": ({"ip": dest, "port": 443} if isinstance(dest, str)
                            else {"ip": IPS[dest["name"]], "port": 8080}),
            "duration_ms": ms,
        }
        if side == "server":
            call["destination"]["workload"] = dest
        if method:
            call["method"] = method
        if path:
            call["path"] = path
        code = error_status if error else status
        if code is not None:
            call["status"] = code
        if error and code is None:
            call["error"] = True
        if host:
            call["host"] = host
        if trace:
            call["trace_id"] = f"{trace}-{i}"
        calls.append(call)
    return calls


def window_a() -> list[dict]:
    t = A[0]
    return [
        *_calls(None, FRONTEND, t, 100, ms=10, side="server", path="/"),
        *_calls(FRONTEND, CHECKOUT, t, 50, errors=5, ms=80, method="POST",
                path="/api/v1/checkout", trace="fc"),
        *_calls(FRONTEND, CHECKOUT, t + 60, 20, ms=15, path="/api/v1/traces/search"),
        *_calls(CHECKOUT, PAYMENTS, t, 40, errors=4, ms=200, method="POST", path="/v1/charge",
                error_status=503),
        *_calls(PAYMENTS, STRIPE_IP, t, 40, ms=300, method="POST", path="/v1/charges",
                host="api.stripe.com"),
        *_calls(CHECKOUT, POSTGRES, t, 90, ms=2, protocol="postgres", method="", status=None),
        *_calls(PAYMENTS, UNKNOWN_IP, t, 10, errors=10, ms=1000, protocol="tcp", method="",
                status=None, error_status=None),
        *_calls(CHECKOUT, MAIL_IP, t, 5, ms=50, protocol="smtp", method="", status=None),
        *_calls(AUDITOR, CHECKOUT, t, 10, ms=5, path="/internal/audit"),
        *_calls(AUDITOR, POSTGRES, t, 10, ms=3, protocol="postgres", method="", status=None),
    ]


def window_b() -> list[dict]:
    t = B[0]
    return [
        *_calls(None, FRONTEND, t, 100, ms=10, side="server", path="/"),
        *_calls(FRONTEND, CHECKOUT, t, 50, errors=30, ms=80, method="POST",
                path="/api/v1/checkout"),
        *_calls(CHECKOUT, PAYMENTS, t, 40, errors=4, ms=200, method="POST", path="/v1/charge",
                error_status=503),
        *_calls(PAYMENTS, STRIPE_IP, t, 40, ms=2000, method="POST", path="/v1/charges",
                host="api.stripe.com"),
        *_calls(FRONTEND, RECOMMEND, t, 30, ms=20, path="/recommend"),
    ]


def payloads() -> list[dict]:
    endpoints = [{"ip": IPS[w["name"]], "workload": w, "from": T0 - 3600} for w in WORKLOADS]
    dns = [{"name": "mail.example.com", "ips": [MAIL_IP], "timestamp": T0, "ttl": 3600}]
    return [
        {"batch_id": "golden-a", "agent": "node-1", "endpoints": endpoints, "dns": dns,
         "calls": window_a()},
        {"batch_id": "golden-b", "agent": "node-1", "calls": window_b()},
    ]


def load(store: GraphStore, settings: Settings) -> Ingestor:
    ingestor = Ingestor(store, settings, clock=lambda: float(NOW))
    for payload in payloads():
        assert ingestor.ingest(payload)
    return ingestor
