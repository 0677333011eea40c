"""Publishing logic: capping by policy, conditions that do not flap, an outage that keeps the
last good recommendations, and pod names from history mapped to their workloads."""

from __future__ import annotations

import datetime as dt
from typing import Any

from bridgescale.kube.workloads import ContainerSpec, Workload, WorkloadRef
from bridgescale.policy import WorkloadPolicy
from bridgescale.quantity import POD
from bridgescale.recommender.discovery import PodOwners
from bridgescale.recommender.fleet import ModelRecommendation
from bridgescale.recommender.status import (
    ContainerResult,
    cap,
    load_forecast,
    nearly_equal,
    recommendation_status,
    unavailable_status,
    vpa_status,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
GIB = 1024**3


def _found() -> ModelRecommendation:
    return ModelRecommendation(
        target={"cpu": 2.0, "memory": 3 * GIB, "gpu-memory": 4 * GIB},
        lower_bound={"cpu": 1.0, "memory": 2 * GIB, "gpu-memory": 3 * GIB},
        upper_bound={"cpu": 3.0, "memory": 4 * GIB, "gpu-memory": 5 * GIB},
        confidence=0.5,
    )


def test_cap_clamps_keeps_bounds_ordered_and_gpu_memory_only_with_a_claim() -> None:
    policy = WorkloadPolicy(max_allowed={"cpu": 1.5})
    result = cap("router", "bridgescale", _found(), policy, has_gpu_claim=False)
    assert result.target["cpu"] == 1.5
    assert result.uncapped_target["cpu"] == 2.0
    assert result.lower_bound["cpu"] <= result.target["cpu"] <= result.upper_bound["cpu"]
    assert "gpu-memory" not in result.target
    with_claim = cap("decimator", "bridgescale", _found(), policy, has_gpu_claim=True)
    assert with_claim.target["gpu-memory"] == 4 * GIB


def test_an_outage_keeps_recommendations_and_only_sets_its_condition() -> None:
    result = cap("router", "bridgescale", _found(), WorkloadPolicy(), has_gpu_claim=False)
    good = recommendation_status([result], {}, NOW)
    later = NOW + dt.timedelta(minutes=5)
    down = unavailable_status(good, "connection refused", later)
    assert down["containerRecommendations"] == good["containerRecommendations"]
    assert down["lastUpdateTime"] == good["lastUpdateTime"]
    conditions = {c["type"]: c for c in down["conditions"]}
    assert conditions["PrometheusUnavailable"]["status"] == "True"
    assert (
        conditions["RecommendationProvided"]
        == {c["type"]: c for c in good["conditions"]}["RecommendationProvided"]
    )
    again = recommendation_status([result], down, later + dt.timedelta(minutes=5))
    provided = {c["type"]: c for c in again["conditions"]}["RecommendationProvided"]
    assert provided["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_past_pods_map_to_their_workloads_by_name() -> None:
    def workload(kind: str, name: str, pods: tuple[str, ...] = ()) -> Workload:
        return Workload(
            WorkloadRef("ns", kind, name, "apps/v1", f"uid-{name}"),
            {},
            (ContainerSpec("c"),),
            pods,
        )

    owners = PodOwners(
        [
            workload("Deployment", "router"),
            workload("StatefulSet", "db"),
            workload("Pod", "x", ("x",)),
        ]
    )
    assert owners.workload_of("router-6d8f9c7b5-x2k4q").ref.name == "router"
    assert owners.workload_of("db-12").ref.name == "db"
    assert owners.workload_of("x").ref.kind == "Pod"
    assert owners.workload_of("router") is None
    assert owners.workload_of("other-6d8f9c7b5-x2k4q") is None


def test_the_load_forecast_sums_the_containers_hour_by_hour_from_the_current_hour() -> None:
    now = dt.datetime(2026, 7, 1, 10, 25, tzinfo=dt.UTC)
    router = ContainerResult("router", "bridgescale", cpu_profile=(0.5, 0.25, 1.0))
    sidecar = ContainerResult("telemetry", "bridgescale", cpu_profile=(0.1, 0.1, 0.1))
    assert load_forecast([router, sidecar], now) == {
        "start": "2026-07-01T10:00:00Z",
        "stepSeconds": 3600,
        "cpu": [0.6, 0.35, 1.1],
    }
    assert load_forecast([router, ContainerResult("new", "bridgescale")], now) is None
    assert "loadForecast" not in recommendation_status([ContainerResult("a", "m")], {}, now)


def test_an_envelope_is_published_as_the_pod_recommendation() -> None:
    router = cap("router", "bridgescale", _found(), WorkloadPolicy(), has_gpu_claim=False)
    envelope = cap(POD, "bridgescale", _found(), WorkloadPolicy(), has_gpu_claim=False)

    status = recommendation_status([router, envelope], {}, NOW)

    assert [e["containerName"] for e in status["containerRecommendations"]] == ["router"]
    assert status["podRecommendation"]["target"] == {"cpu": "2", "memory": "3Gi"}
    assert "containerName" not in status["podRecommendation"]
    assert vpa_status([router, envelope], {}, NOW)["recommendation"][
        "containerRecommendations"
    ] == [vpa_status([router], {}, NOW)["recommendation"]["containerRecommendations"][0]]
    assert recommendation_status([router], status, NOW)["podRecommendation"] is None


def test_an_envelope_covers_the_containers_without_resources_of_their_own() -> None:
    ref = WorkloadRef("ns", "Deployment", "bridge", "apps/v1", "uid")
    router = ContainerSpec("router", requests={"cpu": "200m"})
    workload = Workload(
        ref,
        {},
        (router, ContainerSpec("telemetry")),
        envelope=ContainerSpec(POD, limits={"cpu": "1"}),
    )
    assert [c.name for c in workload.sized()] == ["router", POD]
    assert Workload(ref, {}, (router, ContainerSpec("telemetry"))).sized() == (
        router,
        ContainerSpec("telemetry"),
    )


def _status_with(memory: float, cpu: float = 2.0) -> dict[str, Any]:
    found = _found()
    found = ModelRecommendation(
        target={**found.target, "memory": memory, "cpu": cpu},
        lower_bound=found.lower_bound,
        upper_bound={**found.upper_bound, "memory": max(memory, 4 * GIB)},
        confidence=found.confidence,
    )
    result = cap("router", "bridgescale", found, WorkloadPolicy(), has_gpu_claim=False)
    return recommendation_status([result], {}, NOW)


def test_a_status_counts_as_changed_only_when_an_amount_moved_past_the_ratio() -> None:
    written = _status_with(3 * GIB)
    assert nearly_equal(written, _status_with(3 * GIB), 0.02)
    assert nearly_equal(written, _status_with(3.05 * GIB), 0.02)  # 1.6 %
    assert not nearly_equal(written, _status_with(3.1 * GIB), 0.02)  # 3.2 %
    assert not nearly_equal(written, _status_with(3.05 * GIB), 0.0)  # any move, at ratio 0
    assert not nearly_equal(written, _status_with(3 * GIB, cpu=2.5), 0.02)


def test_anything_but_an_amount_is_compared_exactly() -> None:
    written = _status_with(3 * GIB)
    other_message = {**written, "conditions": [{**written["conditions"][0], "message": "x"}]}
    assert not nearly_equal(written, other_message, 0.5)
    fewer = {**written, "containerRecommendations": []}
    assert not nearly_equal(written, fewer, 0.5)
    assert not nearly_equal({"cpu": "2"}, {"cpu": "two"}, 0.5)  # garbage is a change
    assert not nearly_equal({"name": "2"}, {"name": "2.01"}, 0.5)  # not under a resource


def test_plain_numbers_move_by_the_ratio_or_a_hundredth() -> None:
    assert nearly_equal({"cpu": [0.001, 1.0]}, {"cpu": [0.004, 1.015]}, 0.02)
    assert not nearly_equal({"cpu": [0.001, 1.0]}, {"cpu": [0.004, 1.05]}, 0.02)
    assert not nearly_equal({"confidence": 0.5}, {"confidence": 0.52}, 0.02)
