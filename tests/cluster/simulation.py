"""Pods for the simulator's tests: manifests, resize patches, and waits on what the simulated
kubelet reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.utils import parse_quantity

from tests.cluster.waiting import eventually

IMAGE = "bridgescale.dev/sim-bridge:1"
Body = dict[str, Any]


@dataclass(frozen=True)
class Container:
    """A container's resources; `None` leaves a value unset."""

    name: str = "c1"
    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    cpu_policy: str | None = None  # NotRequired or RestartContainer
    memory_policy: str | None = None
    sidecar: bool = False

    def resources(self) -> Body:
        requests = {"cpu": self.cpu_request, "memory": self.memory_request}
        limits = {"cpu": self.cpu_limit, "memory": self.memory_limit}
        body: Body = {}
        if any(requests.values()):
            body["requests"] = {k: v for k, v in requests.items() if v}
        if any(limits.values()):
            body["limits"] = {k: v for k, v in limits.items() if v}
        return body

    def manifest(self) -> Body:
        body: Body = {"name": self.name, "image": IMAGE, "resources": self.resources()}
        policies = [
            {"resourceName": name, "restartPolicy": policy}
            for name, policy in (("cpu", self.cpu_policy), ("memory", self.memory_policy))
            if policy
        ]
        if policies:
            body["resizePolicy"] = policies
        if self.sidecar:
            body["restartPolicy"] = "Always"
        return body


def guaranteed(name: str = "c1", cpu: str = "100m", memory: str = "200Mi", **kw: Any) -> Container:
    return Container(name, cpu, cpu, memory, memory, **kw)


def pod_manifest(
    name: str,
    containers: Sequence[Container],
    node: str | None = None,
    annotations: Mapping[str, str] | None = None,
    **spec: Any,
) -> Body:
    regular = [c.manifest() for c in containers if not c.sidecar]
    sidecars = [c.manifest() for c in containers if c.sidecar]
    pod_spec: Body = {"containers": regular, "terminationGracePeriodSeconds": 30, **spec}
    if sidecars:
        pod_spec["initContainers"] = sidecars
    if node:
        pod_spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": dict(annotations or {})},
        "spec": pod_spec,
    }


def resize_patch(containers: Sequence[Container]) -> Body:
    """A strategic merge patch of the `resize` subresource setting these resources."""
    regular = [{"name": c.name, "resources": c.resources()} for c in containers if not c.sidecar]
    sidecars = [{"name": c.name, "resources": c.resources()} for c in containers if c.sidecar]
    spec: Body = {"containers": regular} if regular else {}
    if sidecars:
        spec["initContainers"] = sidecars
    return {"spec": spec}


def all_statuses(pod: client.V1Pod) -> list[client.V1ContainerStatus]:
    return [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]


def is_running(pod: client.V1Pod) -> bool:
    statuses = pod.status.container_statuses or []
    return (
        pod.status.phase == "Running"
        and bool(statuses)
        and all(s.state.running is not None and s.resources is not None for s in statuses)
    )


def run_pod(
    api: client.ApiClient, namespace: str, manifest: Body, timeout: float = 60
) -> client.V1Pod:
    """Create the pod and wait until the simulator reports it running."""
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, manifest)
    name = manifest["metadata"]["name"]
    return eventually(
        lambda: pod if is_running(pod := core.read_namespaced_pod(name, namespace)) else None,
        timeout=timeout,
        what=f"pod {name} running",
    )


def condition(pod: client.V1Pod, kind: str) -> client.V1PodCondition | None:
    return next((c for c in pod.status.conditions or [] if c.type == kind), None)


def same_quantities(actual: Mapping[str, str] | None, expected: Mapping[str, str]) -> bool:
    actual = actual or {}
    if set(actual) != set(expected):
        return False
    return all(parse_quantity(actual[k]) == parse_quantity(v) for k, v in expected.items())


@dataclass
class Expected:
    """What a container should show once a resize is actuated."""

    container: Container
    restart_count: int = 0
    checks: list[str] = field(default_factory=list)


def resize_actuated(pod: client.V1Pod, expected: Sequence[Expected]) -> bool:
    """Spec, allocatedResources and resources all at the expected values, no resize condition
    left, restart counts as expected."""
    if condition(pod, "PodResizePending") or condition(pod, "PodResizeInProgress"):
        return False
    specs = {c.name: c for c in [*(pod.spec.init_containers or []), *pod.spec.containers]}
    statuses = {s.name: s for s in all_statuses(pod)}
    for item in expected:
        want = item.container.resources()
        spec, status = specs[item.container.name], statuses[item.container.name]
        applied = status.resources
        if not (
            same_quantities(spec.resources.requests, want.get("requests", {}))
            and same_quantities(spec.resources.limits, want.get("limits", {}))
            and same_quantities(status.allocated_resources, want.get("requests", {}))
            and same_quantities(applied.requests, want.get("requests", {}))
            and same_quantities(applied.limits, want.get("limits", {}))
            and status.restart_count == item.restart_count
        ):
            return False
    return True


def wait_resized(
    api: client.ApiClient,
    namespace: str,
    name: str,
    expected: Sequence[Expected],
    timeout: float = 20,
) -> client.V1Pod:
    core = client.CoreV1Api(api)
    return eventually(
        lambda: (
            pod
            if resize_actuated(pod := core.read_namespaced_pod(name, namespace), expected)
            else None
        ),
        timeout=timeout,
        what=f"the resize of {name} to be actuated",
    )
