"""DRA with the simulated GPUs: the real scheduler allocates claims from the simulator's
ResourceSlices; the simulator starts a pod once its claims are reserved for it."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from bridgescale.simulator.dra import MIG_CLASS, SHARED_CLASS
from tests.cluster.simulation import Body, guaranteed, pod_manifest, run_pod
from tests.cluster.waiting import eventually


def claim_template(name: str, request: Body) -> Body:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name},
        "spec": {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": request}]}}},
    }


def mig(profile: str) -> Body:
    selector = f"device.attributes['gpu.sim.bridgescale.dev'].profile == '{profile}'"
    return {"deviceClassName": MIG_CLASS, "selectors": [{"cel": {"expression": selector}}]}


def shared(memory: str) -> Body:
    return {"deviceClassName": SHARED_CLASS, "capacity": {"requests": {"memory": memory}}}


ECC_TAINT = "gpu.sim.bridgescale.dev/ecc-errors"


def taint_rule(device: str, effect: str, node: str = "sim-mig-0") -> Body:
    """A DeviceTaintRule on one simulated GPU, as a fleet's health monitoring would make."""
    selector = {"driver": "gpu.sim.bridgescale.dev", "pool": node, "device": device}
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceTaintRule",
        "metadata": {"generateName": "ecc-"},
        "spec": {
            "deviceSelector": selector,
            "taint": {"key": ECC_TAINT, "value": "true", "effect": effect},
        },
    }


def gpu_pod(name: str, template: str, **annotations: str) -> Body:
    manifest = pod_manifest(name, [guaranteed()], annotations=annotations)
    manifest["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": template}]
    manifest["spec"]["containers"][0]["resources"]["claims"] = [{"name": "gpu"}]
    return manifest


@pytest.fixture
def templates(api: client.ApiClient, namespace: str) -> Iterator[Any]:
    resource = client.ResourceV1Api(api)

    def create(name: str, request: Body) -> None:
        resource.create_namespaced_resource_claim_template(namespace, claim_template(name, request))

    yield create


def allocation(api: client.ApiClient, namespace: str, pod: client.V1Pod) -> Any:
    claim_name = pod.status.resource_claim_statuses[0].resource_claim_name
    claim = client.ResourceV1Api(api).read_namespaced_resource_claim(claim_name, namespace)
    return claim.status.allocation.devices.results[0]


def test_mig_slice_allocated_by_the_scheduler_and_pod_runs(
    api: client.ApiClient, simulator: list[str], namespace: str, templates: Any
) -> None:
    templates("mig-1g", mig("1g.10gb"))

    pod = run_pod(api, namespace, gpu_pod("pointcloud", "mig-1g"))

    assert pod.spec.node_name == "sim-mig-0"
    result = allocation(api, namespace, pod)
    assert result.driver == "gpu.sim.bridgescale.dev"
    assert result.device.startswith("gpu-0-1g-10gb-")
    health = pod.status.container_statuses[0].allocated_resources_status
    assert health[0].name == "claim:gpu"
    assert health[0].resources[0].health == "Healthy"
    assert health[0].resources[0].resource_id == (
        f"gpu.sim.bridgescale.dev/sim-mig-0/{result.device}"
    )


def test_mig_profiles_share_the_gpus_counters(
    api: client.ApiClient, simulator: list[str], namespace: str, templates: Any
) -> None:
    core = client.CoreV1Api(api)
    templates("mig-7g", mig("7g.80gb"))
    templates("mig-1g", mig("1g.10gb"))
    run_pod(api, namespace, gpu_pod("whole", "mig-7g"))

    core.create_namespaced_pod(namespace, gpu_pod("slice", "mig-1g"))

    unschedulable = eventually(
        lambda: next(
            (
                c
                for c in core.read_namespaced_pod("slice", namespace).status.conditions or []
                if c.type == "PodScheduled" and c.status == "False"
            ),
            None,
        ),
        what="the 1g.10gb claim to find no room next to the 7g.80gb one",
    )
    print(f"unschedulable: {unschedulable.message}")
    core.delete_namespaced_pod("whole", namespace)
    eventually(
        lambda: core.read_namespaced_pod("slice", namespace).status.phase == "Running",
        what="the 1g.10gb pod to run once the whole GPU is free",
    )


def test_shared_gpu_gives_each_claim_its_memory(
    api: client.ApiClient, simulator: list[str], namespace: str, templates: Any
) -> None:
    templates("shared-20g", shared("20Gi"))

    first = run_pod(api, namespace, gpu_pod("first", "shared-20g"))
    second = run_pod(api, namespace, gpu_pod("second", "shared-20g"))

    for pod in (first, second):
        assert pod.spec.node_name == "sim-shared-0"
        result = allocation(api, namespace, pod)
        assert result.device == "gpu-0"
        assert result.consumed_capacity["memory"] == "20Gi"


def test_a_noexecute_device_taint_has_kube_controller_manager_delete_the_pod_when_due(
    api: client.ApiClient, simulator: list[str], namespace: str, templates: Any
) -> None:
    """Upstream's device taint eviction controller runs in the local control plane: a pod whose
    claim tolerates the taint for 15 s is deleted then, and a new claim avoids the device."""
    request = mig("7g.80gb")
    request["tolerations"] = [
        {"key": ECC_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 15}
    ]
    templates("mig-7g", request)
    pod = run_pod(api, namespace, gpu_pod("doomed", "mig-7g"))
    device = allocation(api, namespace, pod).device
    resource, core = client.ResourceV1Api(api), client.CoreV1Api(api)
    rule = resource.create_device_taint_rule(taint_rule(device, "NoExecute"))
    try:
        added = rule.spec.taint.time_added
        assert added is not None  # set by the API server
        due = added + dt.timedelta(seconds=15)

        def deleted() -> bool:
            found = core.list_namespaced_pod(namespace).items
            return not [p for p in found if p.metadata.uid == pod.metadata.uid]

        eventually(deleted, timeout=90, what="the taint eviction controller to delete the pod")
        gone_at = dt.datetime.now(dt.UTC)
        events = core.list_namespaced_event(namespace).items
        print(f"taint due {due}, pod gone at {gone_at}")
        assert gone_at >= due
        assert any(e.reason == "DeviceTaintManagerEviction" for e in events)

        # The only 7g device is tainted and this claim does not tolerate it: no allocation.
        templates("mig-7g-strict", mig("7g.80gb"))
        core.create_namespaced_pod(namespace, gpu_pod("waiting", "mig-7g-strict"))
        time.sleep(10)
        assert core.read_namespaced_pod("waiting", namespace).status.phase == "Pending"
    finally:
        resource.delete_device_taint_rule(rule.metadata.name)
