"""Where a pod belongs and whether it fits: the workload that owns it, and a node with room for
its new size (so an eviction never leaves a replacement that cannot schedule)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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


def _tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if toleration.get("operator", "Equal") == "Exists":
        return key in {"", taint.get("key")}
    return key == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or "")


def _compare(have: str | None, bound: list[str], greater: bool) -> bool:
    if have is None or len(bound) != 1:
        return False
    try:
        difference = int(have) - int(bound[0])
    except ValueError:
        return False
    return difference > 0 if greater else difference < 0


def _matches(requirement: Mapping[str, Any], values: Mapping[str, str]) -> bool:
    """One node selector requirement (In, NotIn, Exists, DoesNotExist, Gt, Lt); an operator
    the API server would have refused matches nothing."""
    have = values.get(requirement.get("key", ""))
    wanted = [str(value) for value in requirement.get("values") or []]
    operators: dict[str, Callable[[], bool]] = {
        "In": lambda: have is not None and have in wanted,
        "NotIn": lambda: have is None or have not in wanted,
        "Exists": lambda: have is not None,
        "DoesNotExist": lambda: have is None,
        "Gt": lambda: _compare(have, wanted, greater=True),
        "Lt": lambda: _compare(have, wanted, greater=False),
    }
    check = operators.get(requirement.get("operator", ""))
    return check is not None and check()


def _affinity_allows(spec: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    return any(
        all(_matches(r, labels) for r in term.get("matchExpressions") or [])
        and all(_matches(r, fields) for r in term.get("matchFields") or [])
        for term in terms
    )


def admits(node: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
    """Whether the scheduler could place a pod with this spec on `node`, leaving room aside:
    the node is schedulable, carries the pod's nodeSelector labels and required node
    affinity, and every NoSchedule or NoExecute taint is tolerated. Preferences, pod
    (anti-)affinity and topology spread are not weighed: they rank nodes or depend on other
    pods, and the scheduler has the last word in any case."""
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    labels = node["metadata"].get("labels") or {}
    selector = spec.get("nodeSelector") or {}
    if any(labels.get(key) != value for key, value in selector.items()):
        return False
    if not _affinity_allows(spec, node):
        return False
    tolerations = spec.get("tolerations") or []
    return all(
        any(_tolerates(toleration, taint) for toleration in tolerations)
        for taint in (node.get("spec") or {}).get("taints") or []
        if taint.get("effect") in {"NoSchedule", "NoExecute"}
    )


def node_with_room(
    nodes: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    wanted: Mapping[Sized, float],
    leaving_uid: str,
    spec: Mapping[str, Any] | None = None,
) -> str | None:
    """A node the replacement may use (`admits`, for the pod's `spec`) whose allocatable, less
    what its other pods request, holds `wanted` (the pod being replaced counts as gone)."""
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
        if not admits(node, spec or {}):
            continue
        name = node["metadata"]["name"]
        free = _quantities((node.get("status") or {}).get("allocatable"))
        taken = used.get(name, dict.fromkeys(SIZED, 0.0))
        if all(free[r] - taken[r] >= wanted.get(r, 0.0) for r in SIZED):
            return str(name)
    return None
