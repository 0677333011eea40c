"""The recommender's own metrics, in a registry of its own (tests make one each)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bridgescale.recommender.fleet import ContainerKey
from bridgescale.recommender.status import ContainerResult

BOUNDS = {"target": "target", "lower": "lower_bound", "upper": "upper_bound"}
Labels = tuple[str, ...]
Published = tuple[Gauge, Labels]


class RecommenderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.recommendation = Gauge(
            "bridgescale_recommendation",
            "Recommended amount: cores for cpu, bytes for memory and gpu-memory.",
            ["namespace", "kind", "workload", "container", "resource", "bound"],
            registry=self.registry,
        )
        self.recommendation_info = Gauge(
            "bridgescale_recommendation_info",
            "1 per recommended container; the model label names the model that made it.",
            ["namespace", "kind", "workload", "container", "model"],
            registry=self.registry,
        )
        self.workload_pod = Gauge(
            "bridgescale_workload_pod_info",
            "1 per live pod of a tracked workload: joins per-pod series to their workload.",
            ["namespace", "kind", "workload", "pod"],
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
        self._published: dict[str, set[Published]] = {}
        for source in ("prometheus", "kubernetes", "unexpected"):
            self.errors.labels(source)

    def publish(
        self,
        namespace: str,
        results: Iterable[tuple[ContainerKey, ContainerResult]],
        pods: Iterable[tuple[str, str, str]] = (),
    ) -> None:
        """Set the namespace's gauges: recommendations, the model of each container, and the
        pods (kind, workload, pod) of its workloads; series no longer true are removed."""
        fresh: set[Published] = set()
        for key, result in results:
            workload = (key.namespace, key.kind, key.workload, key.container)
            for bound, attribute in BOUNDS.items():
                for resource, value in getattr(result, attribute).items():
                    labels: Labels = (*workload, resource, bound)
                    self.recommendation.labels(*labels).set(value)
                    fresh.add((self.recommendation, labels))
            info = (*workload, result.model)
            self.recommendation_info.labels(*info).set(1)
            fresh.add((self.recommendation_info, info))
        for kind, workload_name, pod in pods:
            pod_labels = (namespace, kind, workload_name, pod)
            self.workload_pod.labels(*pod_labels).set(1)
            fresh.add((self.workload_pod, pod_labels))
        for gauge, gone in self._published.get(namespace, set()) - fresh:
            gauge.remove(*gone)
        self._published[namespace] = fresh

    def forget(self, namespace: str) -> None:
        """Drop a namespace that left (label removed): its series go."""
        for gauge, labels in self._published.pop(namespace, set()):
            gauge.remove(*labels)
