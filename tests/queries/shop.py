"""A small shop graph with known answers, loaded through the real store."""

from __future__ import annotations

from topology.model import (
    EXTERNAL_CLIENTS_ID,
    EXTERNAL_CLIENTS_NAME,
    KIND_DEPLOYMENT,
    KIND_EXTERNAL_CLIENT,
    KIND_EXTERNAL_SERVICE,
    KIND_STATEFULSET,
    KIND_UNKNOWN_EXTERNAL,
    MINUTE,
    NAMING_HOST,
    NAMING_UNKNOWN,
    UNKNOWN_EXTERNAL_ID,
    UNKNOWN_EXTERNAL_NAME,
    Batch,
    CallBucket,
    Service,
    external_id,
    workload_id,
)
from topology.store.base import GraphStore

T0 = 1_763_712_000  # an hour boundary; window A is [T0, T0 + 600), B is [T0 + 600, T0 + 1200)
A = (T0, T0 + 600)
B = (T0 + 600, T0 + 1200)


def _svc(name: str, namespace: str, team: str, tier: str, kind: str = KIND_DEPLOYMENT) -> Service:
    return Service(workload_id("prod", namespace, kind, name), name, kind, namespace, "prod",
                   {"team": team, "tier": tier}, T0)


FRONTEND = _svc("frontend", "shop", "web", "web")
CHECKOUT = _svc("checkout", "shop", "shop", "api")
PAYMENTS = _svc("payments", "shop", "payments", "api")
RECOMMEND = _svc("recommendations", "shop", "web", "api")
POSTGRES = _svc("postgres", "data", "data", "db", KIND_STATEFULSET)
STRIPE = Service(external_id("api.stripe.com"), "api.stripe.com", KIND_EXTERNAL_SERVICE, seen=T0)
UNKNOWN = Service(UNKNOWN_EXTERNAL_ID, UNKNOWN_EXTERNAL_NAME, KIND_UNKNOWN_EXTERNAL, seen=T0)
CLIENTS = Service(EXTERNAL_CLIENTS_ID, EXTERNAL_CLIENTS_NAME, KIND_EXTERNAL_CLIENT, seen=T0)
SERVICES = (FRONTEND, CHECKOUT, PAYMENTS, RECOMMEND, POSTGRES, STRIPE, UNKNOWN, CLIENTS)


def _calls(
    client: Service, server: Service, start: int, *, protocol: str = "http", method: str = "GET",
    path: str = "/", requests: int, errors: int = 0, ms: float, status: int | None = 200,
    error_status: int | None = 500, naming: str = "workload", minutes: int = 1,
) -> list[CallBucket]:
    """`requests` calls spread evenly over `minutes` one-minute buckets from `start`."""
    buckets = []
    for minute in range(minutes):
        bucket = CallBucket(client.id, server.id, start + minute * MINUTE, MINUTE, protocol,
                            method, path, naming=naming)
        share, failed = requests // minutes, errors // minutes
        for i in range(share):
            error = i < failed
            bucket.record(ms, error=error, status=error_status if error else status)
        buckets.append(bucket)
    return buckets


def window_a() -> list[CallBucket]:
    t = A[0]
    return [
        *_calls(CLIENTS, FRONTEND, t, requests=200, ms=10, minutes=2),
        *_calls(FRONTEND, CHECKOUT, t, method="POST", path="/api/v1/checkout", requests=50,
                errors=5, ms=80),
        *_calls(FRONTEND, CHECKOUT, t + 60, path="/api/v1/traces/search", requests=20, ms=15),
        *_calls(CHECKOUT, PAYMENTS, t, method="POST", path="/v1/charge", requests=40, errors=4,
                ms=200, error_status=503),
        *_calls(PAYMENTS, CHECKOUT, t, method="POST", path="/internal/payment-callback",
                requests=5, ms=5),
        *_calls(PAYMENTS, STRIPE, t, method="POST", path="/v1/charges", requests=40, ms=300,
                naming=NAMING_HOST),
        *_calls(CHECKOUT, POSTGRES, t, protocol="postgres", method="", path="", requests=90,
                ms=2, status=None),
        *_calls(PAYMENTS, POSTGRES, t, protocol="postgres", method="", path="", requests=40,
                ms=3, status=None),
        *_calls(PAYMENTS, UNKNOWN, t, protocol="tcp", method="", path="", requests=10,
                errors=10, ms=1000, status=None, error_status=None, naming=NAMING_UNKNOWN),
    ]


def window_b() -> list[CallBucket]:
    t = B[0]
    return [
        *_calls(CLIENTS, FRONTEND, t, requests=200, ms=10, minutes=2),
        *_calls(FRONTEND, CHECKOUT, t, method="POST", path="/api/v1/checkout", requests=50,
                errors=30, ms=80),
        *_calls(CHECKOUT, PAYMENTS, t, method="POST", path="/v1/charge", requests=40, errors=4,
                ms=200, error_status=503),
        *_calls(PAYMENTS, STRIPE, t, method="POST", path="/v1/charges", requests=40, ms=2000,
                naming=NAMING_HOST),
        *_calls(FRONTEND, RECOMMEND, t, path="/recommend", requests=30, ms=20),
    ]


def load(store: GraphStore) -> None:
    assert store.apply(Batch("shop-a", list(SERVICES), window_a()), now=A[1])
    assert store.apply(Batch("shop-b", [], window_b()), now=B[1])
