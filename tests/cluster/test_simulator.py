"""The simulated kubelet: nodes, running pods, graceful deletion."""

from __future__ import annotations

from kubernetes import client

from tests.cluster.simulation import guaranteed, pod_manifest, run_pod
from tests.cluster.waiting import eventually


def test_nodes_register_with_leases_and_declared_features(
    api: client.ApiClient, simulator: list[str]
) -> None:
    core = client.CoreV1Api(api)
    node = core.read_node("sim-0")
    assert node.status.allocatable["cpu"] == "4"
    assert node.status.node_info.kubelet_version == "v1.37.2"
    assert "InPlacePodVerticalScalingInitContainers" in (node.status.declared_features or [])
    lease = client.CoordinationV1Api(api).read_namespaced_lease("sim-0", "kube-node-lease")
    assert lease.spec.holder_identity == "sim-0"
    assert core.read_node("sim-4").metadata.labels["sim.bridgescale.dev/cpu-manager-policy"] == (
        "static"
    )
    swap = core.read_node("sim-swap-0")
    assert swap.metadata.labels["sim.bridgescale.dev/swap-behavior"] == "LimitedSwap"
    assert swap.status.node_info.swap.capacity == 8 * 1024**3
    assert node.status.node_info.swap is None
    manager = core.read_node("sim-memory-manager-0").metadata.labels
    assert manager["sim.bridgescale.dev/memory-manager-policy"] == "Static"


def test_pod_runs_and_graceful_deletion_completes(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    core = client.CoreV1Api(api)
    pod = run_pod(api, namespace, pod_manifest("bridge-0", [guaranteed()], node="sim-0"))

    status = pod.status.container_statuses[0]
    assert status.ready and status.restart_count == 0
    assert status.allocated_resources == {"cpu": "100m", "memory": "200Mi"}
    assert status.resources.limits == {"cpu": "100m", "memory": "200Mi"}
    ready = next(c for c in pod.status.conditions if c.type == "Ready")
    assert ready.status == "True"
    assert pod.status.observed_generation == 1

    core.delete_namespaced_pod("bridge-0", namespace)  # grace period 30 s
    eventually(
        lambda: not core.list_namespaced_pod(namespace).items,
        timeout=10,
        what="the pod to be gone well before its grace period",
    )
