"""In-place resize of pod-level resources (the pod's envelope, `spec.resources`) against the real
API server and the simulated kubelet: actuated in place, deferred when the node is short, and
what the API server refuses."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bridgescale.simulator.resources import CPU
from tests.cluster.simulation import (
    Body,
    Container,
    condition,
    pod_manifest,
    run_pod,
    same_quantities,
)
from tests.cluster.test_resize_node import available, wait_deferred
from tests.cluster.waiting import eventually

FEATURE = "InPlacePodLevelResourcesVerticalScaling"
# A router with its own request and a telemetry sidecar without resources, in one budget.
BRIDGE = [Container("router", cpu_request="200m", memory_request="256Mi"), Container("telemetry")]


def envelope(cpu: str, memory: str) -> Body:
    """Guaranteed pod-level resources: requests equal to limits."""
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}}


def envelope_patch(resources: Body) -> Body:
    return {"spec": {"resources": resources}}


def envelope_actuated(pod: client.V1Pod, want: Body) -> bool:
    """Spec, status.resources and status.allocatedResources at `want`; no resize condition."""
    if condition(pod, "PodResizePending") or condition(pod, "PodResizeInProgress"):
        return False
    applied = pod.status.resources
    return (
        applied is not None
        and same_quantities(pod.spec.resources.requests, want["requests"])
        and same_quantities(pod.spec.resources.limits, want["limits"])
        and same_quantities(applied.requests, want["requests"])
        and same_quantities(applied.limits, want["limits"])
        and same_quantities(pod.status.allocated_resources, want["requests"])
    )


def wait_envelope(api: client.ApiClient, namespace: str, name: str, want: Body) -> client.V1Pod:
    core = client.CoreV1Api(api)
    return eventually(
        lambda: (
            pod
            if envelope_actuated(pod := core.read_namespaced_pod(name, namespace), want)
            else None
        ),
        timeout=30,
        what=f"the envelope of {name} actuated",
    )


def test_nodes_declare_pod_level_resize(api: client.ApiClient, simulator: list[str]) -> None:
    core = client.CoreV1Api(api)
    for node in simulator:
        assert FEATURE in (core.read_node(node).status.declared_features or [])


def test_two_container_envelope_is_resized_in_place(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    core = client.CoreV1Api(api)
    before = envelope("1", "1Gi")
    manifest = pod_manifest("bridge", BRIDGE, node="sim-0", resources=before)
    pod = run_pod(api, namespace, manifest)
    assert pod.status.qos_class == "Guaranteed"
    wait_envelope(api, namespace, "bridge", before)

    after = envelope("1500m", "1536Mi")
    resized = core.patch_namespaced_pod_resize("bridge", namespace, envelope_patch(after))
    assert resized.metadata.generation == 2

    done = wait_envelope(api, namespace, "bridge", after)
    assert done.metadata.uid == pod.metadata.uid
    assert done.status.observed_generation == 2
    assert {s.name: s.restart_count for s in done.status.container_statuses} == {
        "router": 0,
        "telemetry": 0,
    }
    # The router keeps its own request; the telemetry sidecar still sets none.
    router, telemetry = done.spec.containers
    assert same_quantities(router.resources.requests, {"cpu": "200m", "memory": "256Mi"})
    assert not telemetry.resources.requests and not telemetry.resources.limits


def test_envelope_growth_beyond_free_room_is_deferred(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    core = client.CoreV1Api(api)
    node = "sim-2"
    allocatable, free = available(api, node, CPU, namespace)
    used_by_others = allocatable - free
    neighbour = Container("c1", f"{free // 2}m", f"{free // 2}m")
    run_pod(api, namespace, pod_manifest("neighbour", [neighbour], node=node))
    run_pod(
        api,
        namespace,
        pod_manifest("bridge", BRIDGE, node=node, resources=envelope("500m", "512Mi")),
    )
    wanted = free - free // 2 + 500

    core.patch_namespaced_pod_resize(
        "bridge", namespace, envelope_patch(envelope(f"{wanted}m", "512Mi"))
    )

    pending = wait_deferred(api, namespace, "bridge")
    used = used_by_others + free // 2
    assert pending.message == (
        f"Node didn't have enough resource: cpu, requested: {wanted}, used: {used}, "
        f"capacity: {allocatable}"
    )
    unchanged = core.read_namespaced_pod("bridge", namespace)
    assert same_quantities(unchanged.status.allocated_resources, {"cpu": "500m", "memory": "512Mi"})

    core.delete_namespaced_pod("neighbour", namespace, grace_period_seconds=0)
    wait_envelope(api, namespace, "bridge", envelope(f"{wanted}m", "512Mi"))


@pytest.mark.parametrize(
    ("before", "patch", "refusal"),
    [
        (
            envelope("1", "1Gi"),
            envelope_patch({"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}),
            "Pod QOS Class may not change as a result of resizing",
        ),
    ],
    ids=["Guaranteed envelope made Burstable"],
)
def test_api_server_refuses(
    api: client.ApiClient,
    simulator: list[str],
    namespace: str,
    before: Body,
    patch: Body,
    refusal: str,
) -> None:
    core = client.CoreV1Api(api)
    manifest = pod_manifest("bridge", BRIDGE, node="sim-0", resources=before)
    run_pod(api, namespace, manifest)

    with pytest.raises(ApiException) as refused:
        core.patch_namespaced_pod_resize("bridge", namespace, patch)

    assert refused.value.status == 422, refused.value.body
    assert refusal in str(refused.value.body)


def test_a_removed_envelope_request_comes_back_as_the_containers_sum(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    """PodLevelResourcesFixDefaulting (beta, on in 1.37): the resize strategy defaults a
    pod-level request the patch dropped to the containers' aggregate, so the removal that
    validation forbids never reaches it."""
    core = client.CoreV1Api(api)
    burstable = {"requests": {"cpu": "500m", "memory": "512Mi"}}
    run_pod(api, namespace, pod_manifest("bridge", BRIDGE, node="sim-0", resources=burstable))

    patch = envelope_patch({"requests": {"memory": None}})
    resized = core.patch_namespaced_pod_resize("bridge", namespace, patch)

    assert same_quantities(resized.spec.resources.requests, {"cpu": "500m", "memory": "256Mi"})


def test_an_envelope_beyond_the_node_is_refused_by_the_api_server(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    """PodResizeValidator counts the pod's requests with the envelope (plugin/pkg/admission/
    podresize), so the kubelet never sees an envelope larger than the node."""
    core = client.CoreV1Api(api)
    run_pod(
        api, namespace, pod_manifest("bridge", BRIDGE, node="sim-0", resources=envelope("1", "1Gi"))
    )

    with pytest.raises(ApiException) as refused:
        core.patch_namespaced_pod_resize(
            "bridge", namespace, envelope_patch(envelope("100", "1Gi"))
        )

    assert refused.value.status == 403, refused.value.body
    assert "node didn't have enough allocatable resources: cpu, requested: 100000" in str(
        refused.value.body
    )


def test_the_scheduler_counts_the_envelope_not_the_containers(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    core = client.CoreV1Api(api)
    node = "sim-3"
    _, free = available(api, node, CPU, namespace)
    too_big = envelope(f"{free + 100}m", "512Mi")  # the containers ask for 200m only
    core.create_namespaced_pod(
        namespace, pod_manifest("bridge", BRIDGE, node=node, resources=too_big)
    )

    unschedulable = eventually(
        lambda: condition(core.read_namespaced_pod("bridge", namespace), "PodScheduled"),
        what="the scheduler's verdict",
    )
    assert (unschedulable.status, unschedulable.reason) == ("False", "Unschedulable")
    assert "Insufficient cpu" in (unschedulable.message or "")
