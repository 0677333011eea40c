"""Requests, limits and QoS classes as the kubelet counts them: cpu in millicores, memory and
everything else in units, read from the API's quantities with `kubernetes.utils.parse_quantity`.

Quantities keep the text the pod spec gave them, so that a status reports `64Mi` where the spec
said `64Mi`; comparisons go by value, as the API's `Quantity.Equal` does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from kubernetes.utils import parse_quantity

CPU = "cpu"
MEMORY = "memory"
RESIZABLE = (CPU, MEMORY)

Body = dict[str, Any]
ContainerKind = Literal["init", "sidecar", "regular"]
QOSClass = Literal["Guaranteed", "Burstable", "BestEffort"]


def quantity_value(resource: str, quantity: str) -> int:
    """Millicores for cpu, units for the rest, rounded up as `Quantity.MilliValue/Value` do."""
    value: Decimal = parse_quantity(quantity)  # type: ignore[no-untyped-call]
    return math.ceil(value * 1000) if resource == CPU else math.ceil(value)


@dataclass(frozen=True)
class ContainerResources:
    """One container's requests and limits, as the spec (or an allocation) states them."""

    name: str
    kind: ContainerKind = "regular"
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)
    resize_policy: Mapping[str, str] = field(default_factory=dict)

    def request(self, resource: str) -> int:
        """The request; a limit without a request counts as the request, as the API defaults."""
        quantity = self.requests.get(resource, self.limits.get(resource))
        return quantity_value(resource, quantity) if quantity is not None else 0

    def limit(self, resource: str) -> int | None:
        quantity = self.limits.get(resource)
        return quantity_value(resource, quantity) if quantity is not None else None

    def same_as(self, other: ContainerResources) -> bool:
        """Equal requests and limits by value, on every resource either names."""
        return _same(self.requests, other.requests) and _same(self.limits, other.limits)

    def as_body(self) -> Body:
        body: Body = {}
        if self.requests:
            body["requests"] = dict(self.requests)
        if self.limits:
            body["limits"] = dict(self.limits)
        return body

    @property
    def runs(self) -> bool:
        """A regular container or a sidecar: it keeps running; an init container completes."""
        return self.kind != "init"


def _same(first: Mapping[str, str], second: Mapping[str, str]) -> bool:
    if first.keys() != second.keys():
        return False
    return all(
        quantity_value(name, first[name]) == quantity_value(name, second[name]) for name in first
    )


@dataclass(frozen=True)
class PodResources:
    """A pod's containers in spec order: init containers (sidecars among them), then regulars."""

    containers: tuple[ContainerResources, ...]

    def container(self, name: str) -> ContainerResources | None:
        return next((c for c in self.containers if c.name == name), None)

    def same_as(self, other: PodResources) -> bool:
        if [c.name for c in self.containers] != [c.name for c in other.containers]:
            return False
        return all(a.same_as(b) for a, b in zip(self.containers, other.containers, strict=True))

    def requests(self, resource: str) -> int:
        """The pod's effective request: running containers and sidecars together, or the
        largest init container with the sidecars started before it, whichever is more."""
        sidecars = 0
        largest_init = 0
        for container in self.containers:
            if container.kind == "sidecar":
                sidecars += container.request(resource)
            elif container.kind == "init":
                largest_init = max(largest_init, sidecars + container.request(resource))
        regular = sum(c.request(resource) for c in self.containers if c.kind == "regular")
        return max(regular + sidecars, largest_init)

    def memory_limit(self) -> int | None:
        """The pod cgroup's memory limit: the sum over running containers if all have one."""
        limits = [c.limit(MEMORY) for c in self.containers if c.runs]
        if not limits or any(limit is None for limit in limits):
            return None
        return sum(limit for limit in limits if limit is not None)

    def qos_class(self) -> QOSClass:
        return qos_class(self.containers)


def qos_class(containers: Sequence[ContainerResources]) -> QOSClass:
    """The QoS class from cpu and memory of every container, as the API computes it."""
    requested = False
    guaranteed = True
    for container in containers:
        for resource in RESIZABLE:
            request, limit = container.request(resource), container.limit(resource)
            requested = requested or request > 0 or limit is not None
            if limit is None or request != limit:
                guaranteed = False
    if not requested:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _container(body: Body, kind: ContainerKind) -> ContainerResources:
    resources = body.get("resources") or {}
    policies = {p["resourceName"]: p["restartPolicy"] for p in body.get("resizePolicy") or []}
    return ContainerResources(
        name=body["name"],
        kind=kind,
        requests=dict(resources.get("requests") or {}),
        limits=dict(resources.get("limits") or {}),
        resize_policy=policies,
    )


def pod_resources(spec: Body) -> PodResources:
    """The resources a pod spec asks for."""
    init = [
        _container(c, "sidecar" if c.get("restartPolicy") == "Always" else "init")
        for c in spec.get("initContainers") or []
    ]
    regular = [_container(c, "regular") for c in spec.get("containers") or []]
    return PodResources(tuple(init + regular))


def total_requests(pods: Iterable[PodResources], resource: str) -> int:
    return sum(pod.requests(resource) for pod in pods)
