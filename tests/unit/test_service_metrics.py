"""The recommender's and the updater's own metrics, each in a private registry: the series the
Grafana dashboards read exist, with bounded labels, and go when what they describe goes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from bridgescale.recommender.fleet import ContainerKey
from bridgescale.recommender.metrics import RecommenderMetrics
from bridgescale.recommender.status import ContainerResult
from bridgescale.updater.decide import ResizeState
from bridgescale.updater.metrics import UpdaterMetrics

ROUTER = ContainerKey("bridges", "StatefulSet", "lidar-bridge", "router")
RESULT = ContainerResult("router", "bridgescale", target={"cpu": 0.5, "memory": 2.0**30})


def test_the_recommender_publishes_the_model_and_the_pods_of_each_workload() -> None:
    metrics = RecommenderMetrics(CollectorRegistry())
    pods = [
        ("StatefulSet", "lidar-bridge", "lidar-bridge-0"),
        ("StatefulSet", "lidar-bridge", "lidar-bridge-1"),
    ]
    metrics.publish("bridges", [(ROUTER, RESULT)], pods)
    value = metrics.registry.get_sample_value
    workload = {"namespace": "bridges", "kind": "StatefulSet", "workload": "lidar-bridge"}
    model = {**workload, "container": "router", "model": "bridgescale"}
    assert value("bridgescale_recommendation_info", model) == 1
    assert value("bridgescale_workload_pod_info", {**workload, "pod": "lidar-bridge-1"}) == 1
    target = {**workload, "container": "router", "resource": "cpu", "bound": "target"}
    assert value("bridgescale_recommendation", target) == 0.5

    # A pod gone and a container no longer recommended: their series go; the rest stay.
    metrics.publish("bridges", [], pods[:1])
    assert value("bridgescale_workload_pod_info", {**workload, "pod": "lidar-bridge-1"}) is None
    assert value("bridgescale_workload_pod_info", {**workload, "pod": "lidar-bridge-0"}) == 1
    assert value("bridgescale_recommendation", target) is None
    assert value("bridgescale_recommendation_info", model) is None
    metrics.forget("bridges")
    assert value("bridgescale_workload_pod_info", {**workload, "pod": "lidar-bridge-0"}) is None


def test_the_updater_counters_start_at_zero_for_every_label_value() -> None:
    metrics = UpdaterMetrics(CollectorRegistry())
    value = metrics.registry.get_sample_value
    for result in ("Accepted", "Settled", "Refused", "BeyondNodeAllocatable", "Conflict"):
        assert value("bridgescale_updater_resizes_total", {"result": result}) == 0
    for reason in ("Infeasible", "DeferredTimeout", "ClaimSwap", "ClaimsNotResizable"):
        assert value("bridgescale_updater_recreations_total", {"reason": reason}) == 0
    assert value("bridgescale_updater_claim_swaps_total") == 0


def test_unfinished_resizes_are_counted_per_namespace_and_state_each_pass() -> None:
    metrics = UpdaterMetrics(CollectorRegistry())

    def unfinished(namespace: str, state: str) -> float | None:
        labels = {"namespace": namespace, "state": state}
        return metrics.registry.get_sample_value("bridgescale_updater_unfinished_resizes", labels)

    deferred = [ResizeState.DEFERRED, ResizeState.DEFERRED, ResizeState.SETTLED]
    metrics.count_unfinished({"bridges": deferred, "quiet": []})
    assert unfinished("bridges", "Deferred") == 2
    assert unfinished("bridges", "Infeasible") == 0
    assert unfinished("quiet", "Error") == 0

    metrics.count_unfinished({"bridges": [ResizeState.INFEASIBLE]})
    assert unfinished("bridges", "Deferred") == 0
    assert unfinished("bridges", "Infeasible") == 1
    assert unfinished("quiet", "Error") is None
