"""The mutating admission webhook's decision: size a new pod of a tracked workload from its
recommendation, and point its DRA claims at the templates the updater chose. Pure: the server
(updater/webhook.py) reads the cluster and hands the facts in.

A pod with pod-level resources (`spec.resources`) gets its envelope from the recommendation's
`podRecommendation`, in the envelope's QoS class and no lower than its containers' requests
together; its containers without resources of their own are left so.

The answer is a JSON patch on the pod; a pod that cannot be sized is admitted unchanged (with
the reason in the AdmissionReview's warnings), never refused: the webhook's failurePolicy is
Ignore and it must not become the reason a bridge cannot start.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridgescale.policy import UpdateMode, WorkloadPolicy
from bridgescale.quantity import POD, format_quantity, round_up
from bridgescale.updater.pods import (
    SIZED,
    Container,
    PodProblem,
    QoSClass,
    Sized,
    qos_class,
    read_amounts,
)
from bridgescale.updater.recommendations import Recommendation
from bridgescale.updater.sizing import fit_envelope, plan_container


@dataclass(frozen=True)
class Sizing:
    """What the webhook knows about the new pod's workload."""

    recommendation: Recommendation | None
    policy: WorkloadPolicy = field(default_factory=WorkloadPolicy)
    claim_templates: Mapping[str, str] = field(default_factory=dict)  # pod claim -> template


def initial_sizes(
    container: Container, sizing: Sizing, recommendation: Recommendation
) -> dict[Sized, float]:
    """The recommended sizes (limit, or request without one) of a new container, within the
    policy's min and max."""
    wanted = recommendation.containers.get(container.name)
    if wanted is None:
        return {}
    changed: dict[Sized, float] = {}
    for resource in SIZED:
        if resource in sizing.policy.controlled and resource in wanted.target:
            target = round_up(wanted.target[resource], resource)
            changed[resource] = sizing.policy.clamp(resource, target)
    return changed


def initial_resources(
    container: Container, sizing: Sizing, recommendation: Recommendation, qos: QoSClass
) -> tuple[dict[Sized, float], dict[Sized, float]] | None:
    """The requests and limits of a new container in its pod's QoS class, or None when the
    webhook leaves it as it is."""
    if qos is QoSClass.BEST_EFFORT:
        return None
    changed = initial_sizes(container, sizing, recommendation)
    if qos is QoSClass.GUARANTEED:
        changed = {r: v for r, v in changed.items() if r in container.limits}
    return plan_container(container, changed, qos) if changed else None


def _resources(container: Mapping[str, Any], requests: Mapping[Sized, float],
               limits: Mapping[Sized, float]) -> dict[str, Any]:  # fmt: skip
    resources = dict(container.get("resources") or {})
    for key, amounts in (("requests", requests), ("limits", limits)):
        merged = dict(resources.get(key) or {})
        merged.update({r: format_quantity(v, r) for r, v in amounts.items()})
        if merged:
            resources[key] = merged
    return resources


def _read(raw: Mapping[str, Any], where: str) -> Container:
    resources = raw.get("resources") or {}
    return Container(
        name=str(raw.get("name", POD)),
        requests=read_amounts(resources.get("requests"), SIZED, f"{where}.requests", PodProblem),
        limits=read_amounts(resources.get("limits"), SIZED, f"{where}.limits", PodProblem),
    )


def _size_containers(pod: Mapping[str, Any], sizing: Sizing) -> list[dict[str, Any]]:
    recommendation = sizing.recommendation
    spec = pod.get("spec") or {}
    raw_containers = spec.get("containers") or []
    containers = tuple(
        _read(raw, f"spec.containers[{i}].resources") for i, raw in enumerate(raw_containers)
    )
    envelope = _read({"resources": spec.get("resources")}, "spec.resources")
    has_envelope = bool(envelope.requests or envelope.limits)
    qos = qos_class((envelope,) if has_envelope else containers)
    if recommendation is None or qos is QoSClass.BEST_EFFORT:
        return []
    operations = []
    new_requests = []
    for index, (raw, container) in enumerate(zip(raw_containers, containers, strict=True)):
        new_requests.append(container.requests)
        if has_envelope and not (container.requests or container.limits):
            continue  # lives inside the envelope
        planned = initial_resources(container, sizing, recommendation, qos)
        if planned is None:
            continue
        requests, limits = planned
        new_requests[-1] = requests
        operations.append(
            {
                "op": "replace" if "resources" in raw else "add",
                "path": f"/spec/containers/{index}/resources",
                "value": _resources(raw, requests, limits),
            }
        )
    planned = initial_resources(envelope, sizing, recommendation, qos) if has_envelope else None
    if planned is not None:
        requests, limits = fit_envelope(*planned, new_requests, qos)
        value = _resources({"resources": spec.get("resources")}, requests, limits)
        operations.append({"op": "replace", "path": "/spec/resources", "value": value})
    return operations


def _point_claims(pod: Mapping[str, Any], sizing: Sizing) -> list[dict[str, Any]]:
    operations = []
    for index, claim in enumerate((pod.get("spec") or {}).get("resourceClaims") or []):
        template = sizing.claim_templates.get(str(claim.get("name")))
        if template and claim.get("resourceClaimTemplateName") not in {None, template}:
            operations.append(
                {
                    "op": "replace",
                    "path": f"/spec/resourceClaims/{index}/resourceClaimTemplateName",
                    "value": template,
                }
            )
    return operations


def mutate(pod: Mapping[str, Any], sizing: Sizing) -> list[dict[str, Any]]:
    """The JSON patch that sizes a new pod; raises PodProblem for a pod it cannot read."""
    if sizing.policy.mode is UpdateMode.OFF:
        return []
    return _size_containers(pod, sizing) + _point_claims(pod, sizing)


def sized(manifest: Mapping[str, Any], sizing: Sizing) -> dict[str, Any]:
    """A copy of a pod manifest with `mutate`'s changes made (for bare pods the updater
    creates itself)."""
    copy = json.loads(json.dumps(manifest))
    for operation in mutate(manifest, sizing):
        *parents, last = operation["path"].strip("/").split("/")
        target = copy
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = operation["value"]
        else:
            target[last] = operation["value"]
    return dict(copy)


def review_response(
    uid: str, operations: list[dict[str, Any]], warnings: list[str] | None = None
) -> dict[str, Any]:
    """An admission.k8s.io/v1 AdmissionReview answer that always allows the pod."""
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if operations:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(operations).encode()).decode()
    if warnings:
        response["warnings"] = warnings
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
