"""In-place resize against the real API server and the simulated kubelet: the cases upstream's
e2e tests cover (RESIZE-CASES.md), accepted ones and those the API server refuses."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bridgescale import kube
from tests.cluster.simulation import (
    Container,
    Expected,
    condition,
    guaranteed,
    pod_manifest,
    resize_patch,
    run_pod,
    wait_resized,
)
from tests.cluster.waiting import eventually

NODE = "sim-0"
RESTART = "RestartContainer"
SIDECAR = guaranteed("s1", "50m", "100Mi", sidecar=True)


def resize_and_check(
    api: client.ApiClient,
    namespace: str,
    before: Sequence[Container],
    after: Sequence[Container],
    restarts: dict[str, int] | None = None,
) -> client.V1Pod:
    """Run a pod at `before`, resize it to `after`, and wait until the status shows it."""
    core = client.CoreV1Api(api)
    pod = run_pod(api, namespace, pod_manifest("resized", before, node=NODE))
    resized = core.patch_namespaced_pod_resize("resized", namespace, resize_patch(after))
    assert resized.metadata.generation == 2
    expected = [Expected(c, (restarts or {}).get(c.name, 0)) for c in after]
    done = wait_resized(api, namespace, "resized", expected)
    assert done.metadata.uid == pod.metadata.uid
    assert done.status.observed_generation == 2
    return done


def _restarts(cpu_policy: str | None, memory_policy: str | None, cpu: str, memory: str) -> int:
    cpu_changed, memory_changed = cpu != "100m", memory != "200Mi"
    return int(
        (cpu_changed and cpu_policy == RESTART) or (memory_changed and memory_policy == RESTART)
    )


DIRECTIONS = {
    "cpu up": ("200m", "200Mi"),
    "cpu down": ("50m", "200Mi"),
    "memory up": ("100m", "300Mi"),
    "memory down": ("100m", "150Mi"),
    "both up": ("200m", "300Mi"),
    "both down": ("50m", "150Mi"),
    "cpu up memory down": ("200m", "150Mi"),
    "cpu down memory up": ("50m", "300Mi"),
}
POLICIES = {
    "no restart": (None, None),
    "memory restarts": (None, RESTART),
    "cpu restarts": (RESTART, None),
    "both restart": (RESTART, RESTART),
}
GUARANTEED_CASES = [
    *((direction, "no restart") for direction in DIRECTIONS),
    *(
        (direction, policy)
        for policy in ("memory restarts", "cpu restarts", "both restart")
        for direction in ("cpu down", "memory up", "cpu up memory down")
    ),
]


@pytest.mark.parametrize(
    ("direction", "policy"), GUARANTEED_CASES, ids=[f"{d}, {p}" for d, p in GUARANTEED_CASES]
)
def test_guaranteed_with_sidecar(
    api: client.ApiClient, simulator: list[str], namespace: str, direction: str, policy: str
) -> None:
    cpu, memory = DIRECTIONS[direction]
    cpu_policy, memory_policy = POLICIES[policy]
    before = guaranteed(cpu_policy=cpu_policy, memory_policy=memory_policy)
    after = replace(
        before, cpu_request=cpu, cpu_limit=cpu, memory_request=memory, memory_limit=memory
    )
    restarts = {"c1": _restarts(cpu_policy, memory_policy, cpu, memory)}

    resize_and_check(api, namespace, [SIDECAR, before], [SIDECAR, after], restarts)


def test_sidecar_resizes(api: client.ApiClient, simulator: list[str], namespace: str) -> None:
    bigger = guaranteed("s1", "80m", "150Mi", sidecar=True)
    resize_and_check(api, namespace, [SIDECAR, guaranteed()], [bigger, guaranteed()])


THREE = [
    guaranteed("c1", "100m", "100Mi"),
    guaranteed("c2", "200m", "200Mi"),
    guaranteed("c3", "300m", "300Mi"),
]
THREE_CONTAINER_CASES = {
    "net increase": [
        guaranteed("c1", "300m", "300Mi"),
        guaranteed("c2", "100m", "100Mi"),
        guaranteed("c3", "300m", "300Mi"),
    ],
    "net decrease": [
        guaranteed("c1", "50m", "50Mi"),
        guaranteed("c2", "300m", "300Mi"),
        guaranteed("c3", "100m", "100Mi"),
    ],
    "mixed cpu and memory": [
        guaranteed("c1", "200m", "100Mi"),
        guaranteed("c2", "200m", "100Mi"),
        guaranteed("c3", "100m", "400Mi"),
    ],
}


@pytest.mark.parametrize("case", list(THREE_CONTAINER_CASES))
def test_guaranteed_three_containers(
    api: client.ApiClient, simulator: list[str], namespace: str, case: str
) -> None:
    resize_and_check(api, namespace, THREE, THREE_CONTAINER_CASES[case])


BURSTABLE = Container("c1", "100m", "200m", "100Mi", "200Mi")
BURSTABLE_CASES = {
    "cpu requests": replace(BURSTABLE, cpu_request="150m"),
    "cpu limits": replace(BURSTABLE, cpu_limit="300m"),
    "memory requests": replace(BURSTABLE, memory_request="150Mi"),
    "memory limits": replace(BURSTABLE, memory_limit="300Mi"),
    "all up": Container("c1", "150m", "300m", "150Mi", "300Mi"),
    "all down": Container("c1", "50m", "150m", "50Mi", "150Mi"),
    "cpu up, memory down": Container("c1", "150m", "300m", "50Mi", "150Mi"),
    "requests up, limits down": Container("c1", "150m", "180m", "150Mi", "180Mi"),
}


@pytest.mark.parametrize("case", list(BURSTABLE_CASES))
def test_burstable_one_container(
    api: client.ApiClient, simulator: list[str], namespace: str, case: str
) -> None:
    resize_and_check(api, namespace, [BURSTABLE], [BURSTABLE_CASES[case]])


def test_burstable_six_containers(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    before = [
        Container("c1", cpu_request="100m", memory_request="100Mi"),
        Container("c2", "100m", "200m", "100Mi", "200Mi"),
        Container("c3"),
        Container("c4", cpu_request="2m", memory_request="50Mi"),
        Container("c5", cpu_request="100m", cpu_limit="100m"),
        Container("c6", memory_request="100Mi", memory_limit="200Mi"),
    ]
    after = [
        Container("c1", "100m", "200m", "100Mi", "200Mi"),  # limits added
        Container("c2", "200m", "300m", "50Mi", "100Mi"),
        Container("c3", cpu_request="50m"),  # requests added
        Container("c4", cpu_request="1m", memory_request="50Mi"),  # tiny equivalent change
        Container("c5", cpu_request="200m", cpu_limit="200m"),
        Container("c6", memory_request="150Mi", memory_limit="150Mi"),
    ]
    resize_and_check(api, namespace, before, after)


def test_put_resize_bumps_generation_and_get_resize_is_the_pod(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    core = client.CoreV1Api(api)
    pod = run_pod(api, namespace, pod_manifest("put", [guaranteed()], node=NODE))
    assert pod.metadata.generation == 1
    pod.spec.containers[0].resources = client.V1ResourceRequirements(
        requests={"cpu": "200m", "memory": "200Mi"}, limits={"cpu": "200m", "memory": "200Mi"}
    )

    replaced = core.replace_namespaced_pod_resize("put", namespace, pod)

    assert replaced.metadata.generation == 2
    wait_resized(api, namespace, "put", [Expected(guaranteed(cpu="200m"))])
    via_resize = core.read_namespaced_pod_resize("put", namespace)
    via_pod = core.read_namespaced_pod("put", namespace)
    assert api.sanitize_for_serialization(via_resize) == api.sanitize_for_serialization(via_pod)


def test_guaranteed_resize_shows_in_status_within_5_seconds(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    core = client.CoreV1Api(api)
    pod = run_pod(api, namespace, pod_manifest("fast", [guaranteed()], node=NODE))
    started = time.monotonic()

    core.patch_namespaced_pod_resize("fast", namespace, resize_patch([guaranteed(cpu="300m")]))

    def shown() -> client.V1Pod | None:
        now = core.read_namespaced_pod("fast", namespace)
        resources = now.status.container_statuses[0].resources
        return now if resources.requests["cpu"] == "300m" else None

    resized = eventually(shown, timeout=5, what="the new cpu in containerStatuses[0].resources")
    print(f"resize shown after {time.monotonic() - started:.2f} s")
    assert resized.status.container_statuses[0].restart_count == 0
    assert resized.metadata.uid == pod.metadata.uid


def test_memory_limit_decrease_below_usage_is_an_error_until_reverted(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    core = client.CoreV1Api(api)
    usage = {"sim.bridgescale.dev/profile": "constant", "sim.bridgescale.dev/memory": "120Mi"}
    run_pod(api, namespace, pod_manifest("leaky", [guaranteed()], node=NODE, annotations=usage))

    small = [guaranteed(memory="180Mi")]
    core.patch_namespaced_pod_resize("leaky", namespace, resize_patch(small))
    wait_resized(api, namespace, "leaky", [Expected(small[0])])

    core.patch_namespaced_pod_resize("leaky", namespace, resize_patch([guaranteed(memory="100Mi")]))

    def failed() -> client.V1PodCondition | None:
        found = condition(core.read_namespaced_pod("leaky", namespace), "PodResizeInProgress")
        return found if found and found.reason == "Error" else None

    error = eventually(failed, timeout=10, what="PodResizeInProgress with reason Error")
    print(f"resize error: {error.message}")
    assert "memory limit (104857600) below current usage (125829120)" in (error.message or "")
    assert error.observed_generation == 3
    status = core.read_namespaced_pod("leaky", namespace).status.container_statuses[0]
    assert status.resources.limits["memory"] == "180Mi"
    assert status.allocated_resources["memory"] == "100Mi"

    core.patch_namespaced_pod_resize("leaky", namespace, resize_patch(small))
    wait_resized(api, namespace, "leaky", [Expected(small[0])])


# Rejected by the API server


def _refused(call: Any) -> kube.KubeError:
    with pytest.raises(ApiException) as refused:
        call()
    error = kube.translate(refused.value)
    print(f"refused: {error}")
    return error


BEST_EFFORT = Container("c1")
# Without limits: a limit would give a removed request its value again by defaulting.
REQUESTS_ONLY = Container("c1", cpu_request="100m", memory_request="100Mi")
REJECTED = {
    "BestEffort gains cpu": (
        [BEST_EFFORT],
        {"spec": {"containers": [{"name": "c1", "resources": {"requests": {"cpu": "100m"}}}]}},
        "Pod QOS Class may not change",
    ),
    "BestEffort gains memory": (
        [BEST_EFFORT],
        {"spec": {"containers": [{"name": "c1", "resources": {"limits": {"memory": "1Gi"}}}]}},
        "Pod QOS Class may not change",
    ),
    "Guaranteed loses its limits": (
        [guaranteed()],
        {"spec": {"containers": [{"name": "c1", "resources": {"limits": None}}]}},
        "resource limits cannot be removed",
    ),
    "Burstable loses limits, raises requests": (
        [BURSTABLE],
        {
            "spec": {
                "containers": [
                    {"name": "c1", "resources": {"limits": None, "requests": {"cpu": "150m"}}}
                ]
            }
        },
        "resource limits cannot be removed",
    ),
    "cpu request removed": (
        [REQUESTS_ONLY],
        {"spec": {"containers": [{"name": "c1", "resources": {"requests": {"cpu": None}}}]}},
        "resource requests cannot be removed",
    ),
    "memory request removed": (
        [REQUESTS_ONLY],
        {"spec": {"containers": [{"name": "c1", "resources": {"requests": {"memory": None}}}]}},
        "resource requests cannot be removed",
    ),
    "Burstable made Guaranteed": (
        [BURSTABLE],
        resize_patch([guaranteed(cpu="200m", memory="200Mi")]),
        "Pod QOS Class may not change",
    ),
    "ephemeral-storage": (
        [BURSTABLE],
        {
            "spec": {
                "containers": [
                    {"name": "c1", "resources": {"requests": {"ephemeral-storage": "1Gi"}}}
                ]
            }
        },
        "only cpu and memory resources are mutable",
    ),
    "extended resource": (
        [BURSTABLE],
        {
            "spec": {
                "containers": [
                    {
                        "name": "c1",
                        "resources": {
                            "requests": {"example.com/fpga": "1"},
                            "limits": {"example.com/fpga": "1"},
                        },
                    }
                ]
            }
        },
        "only cpu and memory resources are mutable",
    ),
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_api_server_refuses(
    api: client.ApiClient, simulator: list[str], namespace: str, case: str
) -> None:
    containers, patch, message = REJECTED[case]
    core = client.CoreV1Api(api)
    run_pod(api, namespace, pod_manifest("refused", containers, node=NODE))

    error = _refused(lambda: core.patch_namespaced_pod_resize("refused", namespace, patch))

    assert isinstance(error, kube.Invalid)
    assert message in error.message
    assert core.read_namespaced_pod("refused", namespace).metadata.generation == 1


@pytest.mark.parametrize(
    ("case", "operations"),
    [
        ("renamed", [{"op": "replace", "path": "/spec/containers/0/name", "value": "c9"}]),
        ("reordered", [{"op": "move", "from": "/spec/containers/1", "path": "/spec/containers/0"}]),
    ],
)
def test_api_server_refuses_renaming_or_reordering(
    api: client.ApiClient, simulator: list[str], namespace: str, case: str, operations: list[Any]
) -> None:
    core = client.CoreV1Api(api)
    two = [guaranteed("c1"), guaranteed("c2")]
    run_pod(api, namespace, pod_manifest("refused", two, node=NODE))

    error = _refused(
        lambda: core.patch_namespaced_pod_resize(
            "refused", namespace, operations, _content_type="application/json-patch+json"
        )
    )

    assert isinstance(error, kube.Invalid)
    assert "may not be renamed or reordered on resize" in error.message


def test_api_server_refuses_pod_on_node_without_resize_support(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    """A kubelet that reports no `resources` for running containers cannot resize; the
    simulator always reports them (every other test here depends on it)."""
    core = client.CoreV1Api(api)
    node = f"old-{namespace}"
    capacity = {"cpu": "4", "memory": "8Gi", "pods": "10"}
    core.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    try:
        core.patch_node_status(node, {"status": {"capacity": capacity, "allocatable": capacity}})
        unscheduled = pod_manifest("old", [guaranteed()], schedulerName="bound-by-the-test")
        core.create_namespaced_pod(namespace, unscheduled)
        core.create_namespaced_binding(
            namespace,
            {"metadata": {"name": "old"}, "target": {"kind": "Node", "name": node}},
            _preload_content=False,
        )
        running = {"name": "c1", "image": "x", "imageID": "", "ready": True, "restartCount": 0}
        running["state"] = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
        core.patch_namespaced_pod_status(
            "old", namespace, {"status": {"phase": "Running", "containerStatuses": [running]}}
        )

        error = _refused(
            lambda: core.patch_namespaced_pod_resize(
                "old", namespace, resize_patch([guaranteed(cpu="200m")])
            )
        )

        assert isinstance(error, kube.Invalid)
        assert "Pod running on node without support for resize" in error.message
    finally:
        core.delete_namespaced_pod("old", namespace, grace_period_seconds=0)
        core.delete_node(node)


def test_resize_beyond_node_allocatable_is_forbidden_by_the_api_server(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    """In 1.37 the PodResizeValidator admission plugin refuses it before any kubelet sees it:
    the kubelet's `Infeasible` for this case is gone (it remains for the static CPU manager)."""
    core = client.CoreV1Api(api)
    run_pod(api, namespace, pod_manifest("huge", [guaranteed()], node=NODE))

    error = _refused(
        lambda: core.patch_namespaced_pod_resize(
            "huge", namespace, resize_patch([guaranteed(cpu="8")])
        )
    )

    assert isinstance(error, kube.Forbidden)
    assert (
        "node didn't have enough allocatable resources: cpu, requested: 8000, allocatable: 4000"
        in (error.message)
    )


def test_quota_and_limit_range_apply_to_resizes(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_resource_quota(
        namespace,
        {"metadata": {"name": "cpu"}, "spec": {"hard": {"requests.cpu": "1", "limits.cpu": "1"}}},
    )
    core.create_namespaced_limit_range(
        namespace,
        {
            "metadata": {"name": "bounds"},
            "spec": {
                "limits": [
                    {"type": "Container", "max": {"memory": "1Gi"}, "min": {"memory": "50Mi"}}
                ]
            },
        },
    )
    eventually(
        lambda: core.read_namespaced_resource_quota("cpu", namespace).status.hard,
        what="the quota controller to count the namespace",
    )
    run_pod(api, namespace, pod_manifest("bounded", [guaranteed(cpu="400m")], node=NODE))

    over_quota = _refused(
        lambda: core.patch_namespaced_pod_resize(
            "bounded", namespace, resize_patch([guaranteed(cpu="1200m")])
        )
    )
    assert isinstance(over_quota, kube.Forbidden)
    assert "exceeded quota" in over_quota.message
    above_max = _refused(
        lambda: core.patch_namespaced_pod_resize(
            "bounded", namespace, resize_patch([guaranteed(cpu="400m", memory="2Gi")])
        )
    )
    assert isinstance(above_max, kube.Forbidden)
    assert "maximum memory usage per Container is 1Gi" in above_max.message
    below_min = _refused(
        lambda: core.patch_namespaced_pod_resize(
            "bounded", namespace, resize_patch([guaranteed(cpu="400m", memory="10Mi")])
        )
    )
    assert isinstance(below_min, kube.Forbidden)
    assert "minimum memory usage per Container is 50Mi" in below_min.message

    valid = [guaranteed(cpu="800m", memory="300Mi")]
    core.patch_namespaced_pod_resize("bounded", namespace, resize_patch(valid))
    wait_resized(api, namespace, "bounded", [Expected(valid[0])])
