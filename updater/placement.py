"""Where a pod belongs and whether it fits: the workload that owns it, and a node with room for
its new size (so an eviction never leaves a replacement that cannot schedule)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridgescale.quantity import QuantityError, parse
from bridgescale.updater.pods import SIZED, Pod, Sized

TEMPLATE_HASH = "pod-template-hash"


@dataclass(frozen=True)
class WorkloadKey:
    namespace: str
    kind: str  # Deployment, StatefulSet or Pod
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def workload_of(pod: Pod) -> WorkloadKey | None:
    """The workload a recommendation names for this pod; None for controllers not tracked."""
    if pod.owner is None:
        return WorkloadKey(pod.namespace, "Pod", pod.name)
    if pod.owner.kind == "StatefulSet":
        return WorkloadKey(pod.namespace, "StatefulSet", pod.owner.name)
    suffix = "-" + pod.labels.get(TEMPLATE_HASH, "")
    if pod.owner.kind == "ReplicaSet" and len(suffix) > 1 and pod.owner.name.endswith(suffix):
        return WorkloadKey(pod.namespace, "Deployment", pod.owner.name.removesuffix(suffix))
    return None


def _quantities(raw: Mapping[str, Any] | None) -> dict[Sized, float]:
    found: dict[Sized, float] = {}
    for resource in SIZED:
        try:
            found[resource] = parse((raw or {}).get(resource, 0), resource)
        except QuantityError:
            found[resource] = 0.0
    return found


def _requested(pod: Mapping[str, Any]) -> dict[Sized, float]:
    # TODO(init containers and pod overhead matter here): sums regular containers only.
    total: dict[Sized, float] = dict.fromkeys(SIZED, 0.0)
    for container in (pod.get("spec") or {}).get("containers") or []:
        requests = _quantities((container.get("resources") or {}).get("requests"))
        for resource in SIZED:
            total[resource] += requests[resource]
    return total


def node_with_room(
    nodes: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    wanted: Mapping[Sized, float],
    leaving_uid: str,
) -> str | None:
    """A schedulable node whose allocatable, less what its other pods request, holds `wanted`
    (the pod being replaced counts as gone)."""
    # TODO(a scheduling simulation of the replacement): node selectors, affinity and taints are
    # not considered, so this can find room the scheduler would not use.
    used: dict[str, dict[Sized, float]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        if not node or phase in {"Succeeded", "Failed"} or pod["metadata"]["uid"] == leaving_uid:
            continue
        requested = _requested(pod)
        totals = used.setdefault(node, dict.fromkeys(SIZED, 0.0))
        for resource in SIZED:
            totals[resource] += requested[resource]
    for node in nodes:
        if (node.get("spec") or {}).get("unschedulable"):
            continue
        name = node["metadata"]["name"]
        free = _quantities((node.get("status") or {}).get("allocatable"))
        taken = used.get(name, dict.fromkeys(SIZED, 0.0))
        if all(free[r] - taken[r] >= wanted.get(r, 0.0) for r in SIZED):
            return str(name)
    return None
