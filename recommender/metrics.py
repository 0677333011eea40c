"""The recommender's own metrics, in a registry of its own (tests make one each)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bridgescale.recommender.fleet import ContainerKey
from bridgescale.recommender.status import ContainerResult

BOUNDS = {"target": "target", "lower": "lower_bound", "upper": "upper_bound"}
Labels = tuple[str, str, str, str, str, str]


class RecommenderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.recommendation = Gauge(
            "bridgescale_recommendation",
            "Recommended amount: cores for cpu, bytes for memory and gpu-memory.",
            ["namespace", "kind", "workload", "container", "resource", "bound"],
            registry=self.registry,
        )
        self.cycle_duration = Histogram(
            "bridgescale_recommender_cycle_duration_seconds",
            "Time one recommender cycle took.",
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=self.registry,
        )
        self.series_read = Counter(
            "bridgescale_recommender_series_read_total",
            "Usage series read from Prometheus.",
            registry=self.registry,
        )
        self.points_read = Counter(
            "bridgescale_recommender_points_read_total",
            "Usage points folded into the model.",
            registry=self.registry,
        )
        self.prometheus_queries = Counter(
            "bridgescale_recommender_prometheus_queries_total",
            "Requests sent to Prometheus (range queries and readiness checks), retries included.",
            registry=self.registry,
        )
        self.errors = Counter(
            "bridgescale_recommender_errors_total",
            "Errors by where they happened: prometheus, kubernetes, unexpected.",
            ["source"],
            registry=self.registry,
        )
        self.last_cycle = Gauge(
            "bridgescale_recommender_last_cycle_timestamp_seconds",
            "When the last cycle ended (Unix time).",
            registry=self.registry,
        )
        self._published: dict[str, set[Labels]] = {}
        for source in ("prometheus", "kubernetes", "unexpected"):
            self.errors.labels(source)

    def publish(
        self, namespace: str, results: Iterable[tuple[ContainerKey, ContainerResult]]
    ) -> None:
        """Set the namespace's recommendation gauges; series of containers gone are removed."""
        fresh: set[Labels] = set()
        for key, result in results:
            for bound, attribute in BOUNDS.items():
                for resource, value in getattr(result, attribute).items():
                    labels = (key.namespace, key.kind, key.workload, key.container, resource, bound)
                    self.recommendation.labels(*labels).set(value)
                    fresh.add(labels)
        for labels in self._published.get(namespace, set()) - fresh:
            self.recommendation.remove(*labels)
        self._published[namespace] = fresh

    def forget(self, namespace: str) -> None:
        """Drop a namespace that left (label removed): its series go."""
        for labels in self._published.pop(namespace, set()):
            self.recommendation.remove(*labels)
