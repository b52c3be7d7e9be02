"""Prometheus metrics of this process (``GET /metrics``)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)


class Tally(Collector):
    """A labelled counter for a hot path: adding one is a dict update (a Prometheus
    counter's ``inc`` takes a lock), and ``/metrics`` reads the dict."""

    def __init__(self, name: str, documentation: str, labels: list[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.counts: dict[tuple[str | bytes, ...], int] = {}
        REGISTRY.register(self)

    def add(self, *labels: str | bytes) -> None:
        """Count one under ``labels``: text, or UTF-8 as Redis answers it (decoded when
        read, not on every add)."""
        counts = self.counts
        counts[labels] = counts.get(labels, 0) + 1

    def collect(self) -> Iterator[Metric]:
        totals: dict[tuple[str, ...], int] = {}
        for labels, value in list(self.counts.items()):
            text = tuple(x.decode() if isinstance(x, bytes) else x for x in labels)
            totals[text] = totals.get(text, 0) + value
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for text, value in totals.items():
            family.add_metric(text, value)
        yield family


LEASES = Tally("callpath_leases", "Number leases by pool and outcome", ["site", "pool", "outcome"])
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
