"""Carrying out decisions: one conditional PATCH of `pods/resize` per pod (re-read and re-plan on
409), and recreation through the Eviction API, or for a bare pod: save, evict, create."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bridgescale.quantity import format_quantity
from bridgescale.updater.admission import Sizing, sized
from bridgescale.updater.placement import node_with_room
from bridgescale.updater.pods import SIZED, Pod, PodProblem, Sized, pod_from_json
from bridgescale.updater.ports import Cluster, Refused
from bridgescale.updater.sizing import Resize

# The API server's answer to a resize of a container with DRA claims (kubernetes/kubernetes#138641).
CLAIMS_REFUSAL = "only cpu and memory resources are mutable"
# The API server's answer (PodResizeValidator, 403 with cause NodeCapacity, since 1.35) to a
# resize beyond the allocatable of the pod's node: the kubelet never sees it, so this is where
# "Infeasible" shows up for requests larger than the node.
NODE_CAPACITY_REFUSAL = "didn't have enough allocatable resources"
SAVED_KEEPS = ("name", "labels", "annotations")


class ResizeResult(StrEnum):
    ACCEPTED = "Accepted"
    UNNEEDED = "Unneeded"  # after re-reading the pod, nothing to change
    GONE = "Gone"
    CONFLICT = "Conflict"  # still conflicting after every attempt
    REFUSED = "Refused"
    CLAIMS_NOT_RESIZABLE = "ClaimsNotResizable"
    BEYOND_NODE = "BeyondNodeAllocatable"


@dataclass(frozen=True)
class ResizeOutcome:
    result: ResizeResult
    message: str
    pod: Pod | None = None


def _refusal(resize: Resize, refused: Refused) -> ResizeOutcome:
    if refused.kind == "NotFound":
        return ResizeOutcome(ResizeResult.GONE, "the pod is gone")
    has_claims = any(c.has_claims for c in resize.pod.containers)
    if refused.kind == "Invalid" and has_claims and CLAIMS_REFUSAL in refused.message:
        return ResizeOutcome(ResizeResult.CLAIMS_NOT_RESIZABLE, refused.message, resize.pod)
    if refused.kind == "Forbidden" and NODE_CAPACITY_REFUSAL in refused.message:
        return ResizeOutcome(ResizeResult.BEYOND_NODE, refused.message, resize.pod)
    return ResizeOutcome(ResizeResult.REFUSED, str(refused), resize.pod)


def apply_resize(
    cluster: Cluster,
    resize: Resize,
    replan: Callable[[Pod], Resize | None],
    attempts: int = 3,
) -> ResizeOutcome:
    """PATCH `pods/resize` with the pod's resourceVersion; on 409 re-read, re-plan, retry."""
    for _ in range(attempts):
        pod = resize.pod
        answer = cluster.resize_pod(pod.namespace, pod.name, resize.patch())
        if not isinstance(answer, Refused):
            return ResizeOutcome(ResizeResult.ACCEPTED, resize.describe(), pod_from_json(answer))
        if answer.kind != "Conflict":
            return _refusal(resize, answer)
        raw = cluster.get_pod(pod.namespace, pod.name)
        if raw is None or raw["metadata"]["uid"] != pod.uid:
            return ResizeOutcome(ResizeResult.GONE, "the pod is gone")
        again = replan(pod_from_json(raw))
        if again is None:
            return ResizeOutcome(ResizeResult.UNNEEDED, "no resize needed after re-reading")
        resize = again
    return ResizeOutcome(ResizeResult.CONFLICT, f"the pod kept changing ({attempts} attempts)")


class RecreateResult(StrEnum):
    EVICTED = "Evicted"
    NO_ROOM = "NoRoom"  # no node can fit the new size: the pod stays
    BLOCKED = "Blocked"  # a PodDisruptionBudget allows no disruption now
    GONE = "Gone"
    REFUSED = "Refused"


@dataclass(frozen=True)
class RecreateOutcome:
    result: RecreateResult
    message: str


def saved_manifest(raw: Mapping[str, Any]) -> dict[str, Any]:
    """What recreating a bare pod needs: its spec, unbound, with its name, labels and
    annotations; status and server-set metadata left behind."""
    metadata = {k: v for k, v in raw["metadata"].items() if k in SAVED_KEEPS}
    spec = {k: v for k, v in raw["spec"].items() if k != "nodeName"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def evict(cluster: Cluster, pod: Pod) -> RecreateOutcome:
    refused = cluster.evict_pod(pod.namespace, pod.name, pod.uid)
    if refused is None:
        return RecreateOutcome(RecreateResult.EVICTED, f"evicted {pod.key}")
    if refused.kind == "NotFound":
        return RecreateOutcome(RecreateResult.GONE, "the pod is gone")
    if refused.kind == "TooManyRequests":
        return RecreateOutcome(RecreateResult.BLOCKED, refused.message)
    return RecreateOutcome(RecreateResult.REFUSED, str(refused))


def recreate(
    cluster: Cluster,
    pod: Pod,
    raw: Mapping[str, Any],
    wanted: Mapping[Sized, float],
    sizing: Sizing,
) -> RecreateOutcome:
    """Evict the pod once some node can hold `wanted`; a bare pod's manifest is saved in the
    API server first, at its new size, and `restore_saved_pods` creates it again."""
    node = cluster_node_with_room(cluster, wanted, pod.uid, raw.get("spec") or {})
    if node is None:
        amounts = ", ".join(f"{r} {format_quantity(wanted[r], r)}" for r in SIZED if r in wanted)
        return RecreateOutcome(RecreateResult.NO_ROOM, f"no node has room for {amounts}")
    if pod.owner is None:
        manifest = sized(saved_manifest(raw), sizing)
        cluster.save_pod(pod.namespace, pod.name, pod.uid, manifest)
    return evict(cluster, pod)


def cluster_node_with_room(
    cluster: Cluster,
    wanted: Mapping[Sized, float],
    leaving_uid: str,
    spec: Mapping[str, Any] | None = None,
) -> str | None:
    return node_with_room(cluster.list_nodes(), cluster.all_pods(), wanted, leaving_uid, spec)


def restore_saved_pods(cluster: Cluster, namespace: str) -> list[str]:
    """Create each saved bare pod whose original is gone; forget the ones done. Run at every
    pass, so a crash between eviction and creation loses nothing."""
    restored = []
    for saved in cluster.saved_pods(namespace):
        current = cluster.get_pod(namespace, saved.name)
        if current is not None and current["metadata"]["uid"] == saved.uid:
            if current["metadata"].get("deletionTimestamp") is None:
                cluster.forget_pod(namespace, saved.name)  # never evicted: saved again if needed
            continue
        if current is None:
            created = cluster.create_pod(namespace, saved.manifest)
            if isinstance(created, Refused):
                continue
            restored.append(saved.name)
        cluster.forget_pod(namespace, saved.name)
    return restored


def readable(raw: Mapping[str, Any]) -> Pod | str:
    """The pod, or why it cannot be read."""
    try:
        return pod_from_json(raw)
    except (PodProblem, KeyError) as error:
        return f"pod cannot be read: {error}"
