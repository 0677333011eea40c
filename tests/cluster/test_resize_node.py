"""The node side of in-place resize: deferred resizes, their retry order, infeasible ones, and
the scheduler seeing a shrunk pod. Each test that counts on free capacity has a node of its own
and measures what is free on it first, as upstream's e2e tests do."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from bridgescale.simulator.resources import CPU, MEMORY, pod_resources, quantity_value
from tests.cluster.conftest import DEFERRED_RETRY_SECONDS
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


def available(api: client.ApiClient, node: str, resource: str, namespace: str) -> tuple[int, int]:
    """(allocatable, free) on the node for a test in `namespace`: millicores for cpu, bytes for
    memory. Pods of earlier tests go with their namespaces; wait until they have gone."""
    core = client.CoreV1Api(api)
    allocatable = quantity_value(resource, core.read_node(node).status.allocatable[resource])

    def own_pods() -> tuple[list[client.V1Pod]] | None:
        pods = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
        return None if any(p.metadata.namespace != namespace for p in pods) else (pods,)

    (pods,) = eventually(own_pods, what=f"{node} free of earlier tests")
    specs = [api.sanitize_for_serialization(pod)["spec"] for pod in pods]
    used = sum(pod_resources(spec).requests(resource) for spec in specs)
    return allocatable, allocatable - used


def alone(api: client.ApiClient, nodes: list[str], namespace: str) -> bool:
    """Whether the test's pods are the only ones on the simulated nodes: then no other pod's
    event makes the simulator retry deferred resizes."""
    pods = client.CoreV1Api(api).list_pod_for_all_namespaces().items
    return all(p.metadata.namespace == namespace for p in pods if (p.spec.node_name or "") in nodes)


def deferred(api: client.ApiClient, namespace: str, name: str) -> client.V1PodCondition | None:
    pod = client.CoreV1Api(api).read_namespaced_pod(name, namespace)
    found = condition(pod, "PodResizePending")
    return found if found and found.reason == "Deferred" else None


def wait_deferred(api: client.ApiClient, namespace: str, name: str) -> client.V1PodCondition:
    return eventually(lambda: deferred(api, namespace, name), timeout=10, what=f"{name} deferred")


def cpu_only(name: str, millis: int) -> Container:
    """Burstable: cpu requests equal to limits, no memory (upstream's test containers)."""
    return Container(name, f"{millis}m", f"{millis}m")


@pytest.fixture
def priority_class(api: client.ApiClient, namespace: str) -> Iterator[str]:
    scheduling = client.SchedulingV1Api(api)
    name = f"high-{namespace}"
    scheduling.create_priority_class(
        {"apiVersion": "scheduling.k8s.io/v1", "metadata": {"name": name}, "value": 1000}
    )
    yield name
    scheduling.delete_priority_class(name)


def test_shrinking_a_pod_lets_a_pending_pod_schedule(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    core = client.CoreV1Api(api)
    node = "sim-1"
    _, free = available(api, node, CPU, namespace)
    big = guaranteed("c1", f"{free - 200}m", "100Mi")
    run_pod(api, namespace, pod_manifest("big", [big], node=node))
    core.create_namespaced_pod(namespace, pod_manifest("waiting", [guaranteed(cpu="1")], node=node))
    unschedulable = eventually(
        lambda: condition(core.read_namespaced_pod("waiting", namespace), "PodScheduled"),
        what="the scheduler to report the pod unschedulable",
    )
    assert unschedulable.status == "False"

    smaller = guaranteed("c1", f"{free - 1500}m", "100Mi")
    core.patch_namespaced_pod_resize("big", namespace, resize_patch([smaller]))

    wait_resized(api, namespace, "big", [Expected(smaller)])
    eventually(
        lambda: core.read_namespaced_pod("waiting", namespace).status.phase == "Running",
        what="the pending pod to schedule and run",
    )


def test_deferred_resize_completes_after_another_pod_shrinks(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    core = client.CoreV1Api(api)
    node = "sim-2"
    allocatable, free = available(api, node, CPU, namespace)
    used_by_others = allocatable - free
    run_pod(api, namespace, pod_manifest("neighbour", [cpu_only("c1", free // 2)], node=node))
    run_pod(api, namespace, pod_manifest("growing", [cpu_only("c1", 500)], node=node))
    wanted = free - free // 2 + 500

    core.patch_namespaced_pod_resize("growing", namespace, resize_patch([cpu_only("c1", wanted)]))

    pending = wait_deferred(api, namespace, "growing")
    used = used_by_others + free // 2
    assert pending.message == (
        f"Node didn't have enough resource: cpu, requested: {wanted}, used: {used}, "
        f"capacity: {allocatable}"
    )
    assert pending.observed_generation == 2
    status = core.read_namespaced_pod("growing", namespace).status.container_statuses[0]
    assert status.allocated_resources["cpu"] == "500m"

    shrunk = cpu_only("c1", free // 2 - 600)
    core.patch_namespaced_pod_resize("neighbour", namespace, resize_patch([shrunk]))

    wait_resized(api, namespace, "neighbour", [Expected(shrunk)])
    wait_resized(api, namespace, "growing", [Expected(cpu_only("c1", wanted))])


def test_deferred_resizes_retry_by_priority_qos_and_age(
    api: client.ApiClient, simulator: list[str], namespace: str, priority_class: str
) -> None:
    """Upstream's deferred-test-2: four deferred resizes of one size, accepted one per freed
    slot: the high-priority pod first, then the Guaranteed one, then the older of the rest."""
    core = client.CoreV1Api(api)
    node = "sim-3"
    _, free = available(api, node, CPU, namespace)
    majority, little = 2 * free // 3, free // 16
    run_pod(api, namespace, pod_manifest("pod1", [cpu_only("c", majority)], node=node))
    specs = {
        "pod2": ([cpu_only("c", little)], {"priorityClassName": priority_class}),
        "pod3": ([guaranteed("c", f"{little}m", "100Mi")], {}),
        "pod4": ([cpu_only("c", little)], {}),
        "pod5": ([cpu_only("c", little)], {}),
    }
    for name, (containers, extra) in specs.items():
        run_pod(api, namespace, pod_manifest(name, containers, node=node, **extra))
    grown = {
        "pod2": cpu_only("c", majority),
        "pod3": guaranteed("c", f"{majority}m", "100Mi"),
        "pod4": cpu_only("c", majority),
        "pod5": cpu_only("c", majority),
    }
    for name in ("pod4", "pod3", "pod2", "pod5"):  # an order the kubelet must not follow
        core.patch_namespaced_pod_resize(name, namespace, resize_patch([grown[name]]))
        wait_deferred(api, namespace, name)

    order = ["pod1", "pod2", "pod3", "pod4", "pod5"]
    for index, deleted in enumerate(order[:-1]):
        core.delete_namespaced_pod(deleted, namespace)
        accepted = order[index + 1]
        wait_resized(api, namespace, accepted, [Expected(grown[accepted])])
        for name in order[index + 2 :]:
            assert deferred(api, namespace, name), f"{name} should still be deferred"


def test_one_freed_slot_unblocks_a_chain_of_resizes(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    """Upstream's deferred-test-3: deleting pod1 makes room for pod2's resize, whose memory
    decrease makes room for pod3's, whose cpu decrease makes room for pod4's."""
    core = client.CoreV1Api(api)
    node = "sim-1"
    _, cpu = available(api, node, CPU, namespace)
    _, memory = available(api, node, MEMORY, namespace)
    start = Container("c", cpu_request=f"{cpu // 4}m", memory_request=str(memory // 5))
    for name in ("pod1", "pod2", "pod3", "pod4"):
        run_pod(api, namespace, pod_manifest(name, [start], node=node))
    grown = {
        "pod2": Container("c", cpu_request=f"{cpu // 3}m", memory_request=str(memory // 24)),
        "pod3": Container("c", cpu_request=f"{cpu // 24}m", memory_request=str(2 * memory // 3)),
        "pod4": Container(
            "c", cpu_request=f"{cpu // 2 + cpu // 8}m", memory_request=str(memory // 5)
        ),
    }
    for name, container in grown.items():
        core.patch_namespaced_pod_resize(name, namespace, resize_patch([container]))
        wait_deferred(api, namespace, name)

    core.delete_namespaced_pod("pod1", namespace)

    for name, container in grown.items():
        wait_resized(api, namespace, name, [Expected(container)])


def test_reverting_a_deferred_resize_clears_it(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    core = client.CoreV1Api(api)
    node = "sim-2"
    _, free = available(api, node, CPU, namespace)
    run_pod(api, namespace, pod_manifest("neighbour", [cpu_only("c1", free // 2)], node=node))
    run_pod(api, namespace, pod_manifest("growing", [cpu_only("c1", 100)], node=node))
    too_big = cpu_only("c1", free - free // 2 + 100)
    core.patch_namespaced_pod_resize("growing", namespace, resize_patch([too_big]))
    wait_deferred(api, namespace, "growing")

    core.patch_namespaced_pod_resize("growing", namespace, resize_patch([cpu_only("c1", 100)]))

    reverted = wait_resized(api, namespace, "growing", [Expected(cpu_only("c1", 100))])
    assert reverted.metadata.generation == 3
    assert reverted.status.observed_generation == 3


def wait_infeasible(api: client.ApiClient, namespace: str, name: str) -> client.V1PodCondition:
    """The PodResizePending condition once the kubelet reported it, which must be Infeasible;
    the containers keep the resources they had."""
    core = client.CoreV1Api(api)
    pending = eventually(
        lambda: condition(core.read_namespaced_pod(name, namespace), "PodResizePending"),
        timeout=10,
        what="PodResizePending",
    )
    assert pending.reason == "Infeasible"
    return pending


@pytest.fixture
def roomy_node(api: client.ApiClient) -> Iterator[tuple[str, int]]:
    """A node whose allocatable cpu the test may raise (as its kubelet would report after a
    change of its reserved resources); put back afterwards. Burstable cpu changes are as on any
    node there."""
    core = client.CoreV1Api(api)
    node = "sim-memory-manager-0"
    allocatable = core.read_node(node).status.allocatable[CPU]
    yield node, quantity_value(CPU, allocatable)
    core.patch_node_status(node, {"status": {"allocatable": {CPU: allocatable}}})


def test_deferred_resize_is_admitted_by_the_periodic_retry_alone(
    api: client.ApiClient, simulator: list[str], namespace: str, roomy_node: tuple[str, int]
) -> None:
    core = client.CoreV1Api(api)
    node, allocatable = roomy_node
    _, free = available(api, node, CPU, namespace)
    eventually(lambda: alone(api, simulator, namespace), timeout=60, what="earlier pods gone")
    run_pod(api, namespace, pod_manifest("neighbour", [cpu_only("c1", free // 2)], node=node))
    run_pod(api, namespace, pod_manifest("growing", [cpu_only("c1", 100)], node=node))
    wanted = cpu_only("c1", free // 2 + 500)
    core.patch_namespaced_pod_resize("growing", namespace, resize_patch([wanted]))
    wait_deferred(api, namespace, "growing")

    # More room with no pod event: only the periodic retry (every 6 s here) can see it.
    raised = f"{allocatable + 1000}m"
    core.patch_node_status(node, {"status": {"allocatable": {CPU: raised}}})

    started = time.monotonic()
    wait_resized(api, namespace, "growing", [Expected(wanted)], timeout=20)
    assert time.monotonic() - started <= DEFERRED_RETRY_SECONDS + 3
    neighbour = core.read_namespaced_pod("neighbour", namespace)
    assert neighbour.metadata.generation == 1  # no other resize made the room


STATIC_CPU = 'Resize is infeasible for Guaranteed Pods alongside CPU Manager policy "static"'
STATIC_MEMORY = 'Resize is infeasible for Guaranteed Pods alongside Memory Manager policy "Static"'


@pytest.mark.parametrize(
    ("node", "after", "refusal"),
    [
        ("sim-4", guaranteed(cpu="2"), STATIC_CPU),
        ("sim-4", guaranteed(cpu="1", memory="300Mi"), None),
        ("sim-memory-manager-0", guaranteed(cpu="1", memory="300Mi"), STATIC_MEMORY),
        ("sim-memory-manager-0", guaranteed(cpu="2"), None),
    ],
    ids=[
        "static CPU manager: cpu change is infeasible",
        "static CPU manager: memory change is accepted",
        "static memory manager: memory change is infeasible",
        "static memory manager: cpu change is accepted",
    ],
)
def test_static_manager_node(
    api: client.ApiClient,
    simulator: list[str],
    namespace: str,
    node: str,
    after: Container,
    refusal: str | None,
) -> None:
    core = client.CoreV1Api(api)
    run_pod(api, namespace, pod_manifest("pinned", [guaranteed(cpu="1")], node=node))

    core.patch_namespaced_pod_resize("pinned", namespace, resize_patch([after]))

    if refusal is None:
        wait_resized(api, namespace, "pinned", [Expected(after)])
        return
    assert wait_infeasible(api, namespace, "pinned").message == refusal
    status = core.read_namespaced_pod("pinned", namespace).status.container_statuses[0]
    assert status.resources.requests == {"cpu": "1", "memory": "200Mi"}


def swapping(memory_request: str, memory_policy: str = "NotRequired") -> Container:
    """Burstable with a memory request and no memory limit: it swaps on a LimitedSwap node."""
    return Container("c1", "100m", None, memory_request, None, memory_policy=memory_policy)


def test_swap_node_refuses_a_memory_request_change_of_a_swapping_container(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    core = client.CoreV1Api(api)
    run_pod(api, namespace, pod_manifest("swapper", [swapping("100Mi")], node="sim-swap-0"))

    core.patch_namespaced_pod_resize("swapper", namespace, resize_patch([swapping("200Mi")]))

    pending = wait_infeasible(api, namespace, "swapper")
    assert pending.message == "In-place resize of containers with swap is not supported."
    status = core.read_namespaced_pod("swapper", namespace).status.container_statuses[0]
    assert status.allocated_resources["memory"] == "100Mi"
    assert status.resources.requests["memory"] == "100Mi"


@pytest.mark.parametrize(
    ("before", "after", "restarts"),
    [
        (swapping("100Mi", "RestartContainer"), swapping("200Mi", "RestartContainer"), 1),
        (swapping("100Mi"), Container("c1", "200m", None, "100Mi", None), 0),
        (guaranteed(memory="100Mi"), guaranteed(memory="200Mi"), 0),
    ],
    ids=["a restarting container", "a cpu change", "a Guaranteed pod"],
)
def test_swap_node_accepts_resizes_upstream_allows(
    api: client.ApiClient,
    simulator: list[str],
    namespace: str,
    before: Container,
    after: Container,
    restarts: int,
) -> None:
    core = client.CoreV1Api(api)
    run_pod(api, namespace, pod_manifest("swapper", [before], node="sim-swap-0"))

    core.patch_namespaced_pod_resize("swapper", namespace, resize_patch([after]))

    wait_resized(api, namespace, "swapper", [Expected(after, restart_count=restarts)])
