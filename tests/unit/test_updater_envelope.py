"""Pod-level resources (the envelope): read from the pod and the recommendation, sized on the
containers' summed usage, patched under `spec.resources` with the QoS class kept, nothing
removed, and never below the containers' own requests together."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bridgescale.policy import WorkloadPolicy
from bridgescale.quantity import POD, GiB, MiB
from bridgescale.updater.admission import Sizing, mutate
from bridgescale.updater.decide import applied_matches
from bridgescale.updater.pods import pod_from_json
from bridgescale.updater.recommendations import recommendation_from_json
from bridgescale.updater.settings import UpdaterSettings
from bridgescale.updater.sizing import Usage, plan_resize

SETTINGS = UpdaterSettings()


def bridge_pod(envelope: dict[str, Any], qos: str) -> dict[str, Any]:
    """A router with its own requests and a telemetry sidecar without any, in one envelope."""
    return {
        "metadata": {"namespace": "ns", "name": "bridge-0", "uid": "u", "resourceVersion": "7"},
        "spec": {
            "nodeName": "n",
            "resources": envelope,
            "containers": [
                {"name": "router", "resources": {"requests": {"cpu": "200m", "memory": "1Gi"}}},
                {"name": "telemetry"},
            ],
        },
        "status": {
            "phase": "Running",
            "qosClass": qos,
            "resources": envelope,
            "containerStatuses": [
                {"name": "router", "resources": {"requests": {"cpu": "200m", "memory": "1Gi"}}},
                {"name": "telemetry", "resources": {}},
            ],
        },
    }


GUARANTEED = {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
BURSTABLE = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}


def recommendation(target: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "bridge"},
        "spec": {"targetRef": {"kind": "Deployment", "name": "bridge"}},
        "status": {"podRecommendation": {"target": target}},
    }


def test_the_envelope_is_read_from_spec_status_and_recommendation() -> None:
    pod = pod_from_json(bridge_pod(GUARANTEED, "Guaranteed"))
    assert pod.envelope is not None and pod.envelope.limits == {"cpu": 2.0, "memory": 4 * GiB}
    assert applied_matches(pod)
    read = recommendation_from_json(recommendation({"cpu": "3", "memory": "3Gi"}))
    assert read.containers[POD].target == {"cpu": 3.0, "memory": 3 * GiB}


def test_a_guaranteed_envelope_moves_requests_and_limits_together() -> None:
    pod = pod_from_json(bridge_pod(GUARANTEED, "Guaranteed"))
    target = recommendation_from_json(recommendation({"cpu": "3", "memory": "4Gi"})).containers

    resize = plan_resize(pod, target, WorkloadPolicy(), {}, SETTINGS)

    assert resize is not None and not resize.changes
    assert resize.patch() == {
        "metadata": {"resourceVersion": "7"},
        "spec": {
            "resources": {
                "requests": {"cpu": "3", "memory": "4Gi"},
                "limits": {"cpu": "3", "memory": "4Gi"},
            }
        },
    }


def test_memory_comes_down_no_lower_than_the_summed_usage_allows() -> None:
    pod = pod_from_json(bridge_pod(GUARANTEED, "Guaranteed"))
    target = recommendation_from_json(recommendation({"cpu": "2", "memory": "1Gi"})).containers
    usage = {
        "router": Usage(working_set=1.5 * GiB, peak=1.6 * GiB),
        "telemetry": Usage(working_set=0.5 * GiB, peak=0.6 * GiB),
    }

    resize = plan_resize(pod, target, WorkloadPolicy(), usage, SETTINGS)

    assert resize is not None and resize.envelope is not None
    memory = resize.envelope.limits["memory"]
    assert memory >= 2 * GiB + SETTINGS.memory_headroom_bytes
    assert memory >= 2.2 * GiB * SETTINGS.memory_peak_margin - MiB
    assert resize.envelope.requests["memory"] == memory


@given(
    cpu=st.integers(min_value=1, max_value=8000).map(lambda m: f"{m}m"),
    memory=st.integers(min_value=64, max_value=16384).map(lambda m: f"{m}Mi"),
)
def test_a_burstable_envelope_keeps_its_class_and_the_containers_requests(
    cpu: str, memory: str
) -> None:
    pod = pod_from_json(bridge_pod(BURSTABLE, "Burstable"))
    target = recommendation_from_json(recommendation({"cpu": cpu, "memory": memory})).containers

    resize = plan_resize(pod, target, WorkloadPolicy(), {}, SETTINGS)

    if resize is None or resize.envelope is None:
        return
    requests, limits = resize.envelope.requests, resize.envelope.limits
    assert set(requests) == set(limits) == {"cpu", "memory"}  # nothing removed
    assert requests["cpu"] >= 0.2 and requests["memory"] >= GiB  # the router's own requests
    assert all(requests[r] <= limits[r] for r in requests)
    assert any(requests[r] < limits[r] for r in requests)  # still Burstable
    assert not resize.changes  # the router's requests stay; telemetry sets none


def test_the_webhook_sizes_a_new_pods_envelope_and_leaves_bare_containers_alone() -> None:
    pod = bridge_pod(BURSTABLE, "Burstable")
    wanted = recommendation_from_json(recommendation({"cpu": "3", "memory": "6Gi"}))

    operations = mutate(pod, Sizing(wanted))

    assert operations == [
        {
            "op": "replace",
            "path": "/spec/resources",
            "value": {
                "requests": {"cpu": "1500m", "memory": "3Gi"},
                "limits": {"cpu": "3", "memory": "6Gi"},
            },
        }
    ]
