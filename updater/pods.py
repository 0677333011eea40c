"""A pod as the updater sees it: plain data read from the API server's JSON.

The kube layer hands over pods as the API server serves them (camelCase JSON); this module reads
what the updater decides on: each container's requests, limits and resize policy, what the kubelet
has applied, the resize conditions and the generation they were observed at. A pod that cannot be
read (a quantity that does not parse) raises `PodProblem`, and the updater leaves it alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, TypeVar

from bridgescale.quantity import POD, QuantityError, Resource, parse

Sized = Literal["cpu", "memory"]  # the two resources a resize can change

SIZED: tuple[Sized, ...] = ("cpu", "memory")
Amounts = Mapping[Sized, float]
R = TypeVar("R", bound=Resource)


class QoSClass(StrEnum):
    GUARANTEED = "Guaranteed"
    BURSTABLE = "Burstable"
    BEST_EFFORT = "BestEffort"


class PodProblem(ValueError):
    """A pod the updater cannot read; the message names the field."""


@dataclass(frozen=True)
class Container:
    name: str
    requests: Amounts
    limits: Amounts
    has_claims: bool = False
    restart_on: frozenset[Sized] = frozenset()  # resources whose resize restarts the container


@dataclass(frozen=True)
class Condition:
    type: str
    reason: str
    message: str
    since: dt.datetime | None


@dataclass(frozen=True)
class Owner:
    kind: str
    name: str


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    uid: str
    resource_version: str
    generation: int
    observed_generation: int | None
    qos_class: QoSClass
    containers: tuple[Container, ...]
    applied: Mapping[str, Container] = field(default_factory=dict)  # status, by container name
    conditions: Mapping[str, Condition] = field(default_factory=dict)
    owner: Owner | None = None
    node_name: str | None = None
    phase: str = "Pending"
    terminating: bool = False
    claim_templates: Mapping[str, str] = field(default_factory=dict)  # claim name -> template
    last_resize: dt.datetime | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    envelope: Container | None = None  # pod-level resources, named POD, if the spec sets them
    applied_envelope: Container | None = None  # status.resources at pod level

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def container(self, name: str) -> Container | None:
        return next((c for c in self.containers if c.name == name), None)


def read_amounts(
    raw: Mapping[str, Any] | None,
    resources: tuple[R, ...],
    where: str,
    problem: type[ValueError] = ValueError,
) -> dict[R, float]:
    """The quantities of `resources` in a JSON resource list; raises `problem` naming the field."""
    amounts: dict[R, float] = {}
    for resource in resources:
        if raw and resource in raw:
            try:
                amounts[resource] = parse(raw[resource], resource)
            except QuantityError as error:
                raise problem(f"{where}.{resource}: {error}") from error
    return amounts


def _amounts(raw: Mapping[str, Any] | None, where: str) -> dict[Sized, float]:
    return read_amounts(raw, SIZED, where, PodProblem)


def _container(raw: Mapping[str, Any], where: str) -> Container:
    resources = raw.get("resources") or {}
    restart_on = frozenset(
        policy["resourceName"]
        for policy in raw.get("resizePolicy") or []
        if policy.get("restartPolicy") == "RestartContainer" and policy.get("resourceName") in SIZED
    )
    return Container(
        name=str(raw["name"]),
        requests=_amounts(resources.get("requests"), f"{where}.resources.requests"),
        limits=_amounts(resources.get("limits"), f"{where}.resources.limits"),
        has_claims=bool(resources.get("claims")),
        restart_on=restart_on,
    )


def _time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _conditions(status: Mapping[str, Any]) -> dict[str, Condition]:
    return {
        str(c["type"]): Condition(
            type=str(c["type"]),
            reason=str(c.get("reason") or ""),
            message=str(c.get("message") or ""),
            since=_time(c.get("lastTransitionTime")),
        )
        for c in status.get("conditions") or []
        if c.get("status") == "True"
    }


def _last_resize(metadata: Mapping[str, Any]) -> dt.datetime | None:
    """When `pods/resize` last wrote this pod: the API server records it in managedFields, so
    the cool-down survives an updater restart without any state of ours."""
    times = [
        _time(entry.get("time"))
        for entry in metadata.get("managedFields") or []
        if entry.get("subresource") == "resize"
    ]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _applied(status: Mapping[str, Any]) -> dict[str, Container]:
    applied = {}
    for index, raw in enumerate(status.get("containerStatuses") or []):
        where = f"status.containerStatuses[{index}]"
        applied[str(raw["name"])] = _container(raw, where)
    return applied


def _owner(metadata: Mapping[str, Any]) -> Owner | None:
    for ref in metadata.get("ownerReferences") or []:
        if ref.get("controller"):
            return Owner(kind=str(ref["kind"]), name=str(ref["name"]))
    return None


def _claim_templates(spec: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(c["name"]): str(c["resourceClaimTemplateName"])
        for c in spec.get("resourceClaims") or []
        if c.get("resourceClaimTemplateName")
    }


def _envelope(resources: Mapping[str, Any] | None, where: str) -> Container | None:
    """Pod-level requests and limits, if any cpu or memory is set there."""
    found = _container({"name": POD, "resources": resources or {}}, where)
    return found if found.requests or found.limits else None


def pod_from_json(raw: Mapping[str, Any]) -> Pod:
    """The updater's view of a pod as the API server serves it; raises PodProblem."""
    metadata, spec, status = raw["metadata"], raw.get("spec") or {}, raw.get("status") or {}
    containers = tuple(
        _container(c, f"spec.containers[{i}]") for i, c in enumerate(spec.get("containers") or [])
    )
    try:
        qos = QoSClass(status.get("qosClass") or qos_class(containers))
    except ValueError as error:
        raise PodProblem(f"status.qosClass: {error}") from error
    return Pod(
        namespace=str(metadata["namespace"]),
        name=str(metadata["name"]),
        uid=str(metadata["uid"]),
        resource_version=str(metadata["resourceVersion"]),
        generation=int(metadata.get("generation") or 1),
        observed_generation=status.get("observedGeneration"),
        qos_class=qos,
        containers=containers,
        applied=_applied(status),
        conditions=_conditions(status),
        owner=_owner(metadata),
        node_name=spec.get("nodeName"),
        phase=str(status.get("phase") or "Pending"),
        terminating=metadata.get("deletionTimestamp") is not None,
        claim_templates=_claim_templates(spec),
        last_resize=_last_resize(metadata),
        annotations=dict(metadata.get("annotations") or {}),
        labels=dict(metadata.get("labels") or {}),
        envelope=_envelope(spec.get("resources"), "spec"),
        applied_envelope=_envelope(status.get("resources"), "status"),
    )


def qos_class(containers: tuple[Container, ...]) -> QoSClass:
    """The QoS class the API server computes for these containers (cpu and memory only)."""
    if not any(c.requests or c.limits for c in containers):
        return QoSClass.BEST_EFFORT
    guaranteed = all(
        all(r in c.limits for r in SIZED)
        and all(c.requests.get(r, c.limits[r]) == c.limits[r] for r in SIZED)
        for c in containers
    )
    return QoSClass.GUARANTEED if guaranteed else QoSClass.BURSTABLE
