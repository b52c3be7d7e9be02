"""Prometheus metrics of this process (``GET /metrics``)."""

from __future__ import annotations

from functools import lru_cache

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


def count(metric: Counter, *labels: str) -> None:
    """Add one to ``metric`` under ``labels`` (the labelled child is looked up once: on a
    hot path ``labels()`` costs more than ``inc()``)."""
    _child(metric, labels).inc()


@lru_cache(maxsize=4096)
def _child(metric: Counter, labels: tuple[str, ...]) -> Counter:
    return metric.labels(*labels)


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
