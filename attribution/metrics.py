"""Prometheus metrics of this process (``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

LEASES = Counter(
    "callpath_leases_total",
    "Number leases by pool and outcome",
    ["site", "pool", "outcome"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "callpath_sessions_rate_limited_total",
    "New sessions refused by the per-address limit",
    registry=REGISTRY,
)
CALLS = Counter(
    "callpath_calls_total", "Calls stored, by site and match", ["site", "match"], registry=REGISTRY
)
GA4 = Counter(
    "callpath_ga4_events_total",
    "GA4 deliveries by site and outcome",
    ["site", "outcome"],
    registry=REGISTRY,
)


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
