"""Requests, limits and QoS classes as the kubelet counts them: cpu in millicores, memory and
everything else in units, read from the API's quantities with `kubernetes.utils.parse_quantity`.

A pod may also set resources for the whole pod (`spec.resources`, PodLevelResources, beta and on
in 1.37): that envelope then stands for the pod's requests and limits of the resources it names,
and alone decides the QoS class.

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


def _request(requests: Mapping[str, str], limits: Mapping[str, str], resource: str) -> int:
    """A limit without a request counts as the request, as the API defaults."""
    quantity = requests.get(resource, limits.get(resource))
    return quantity_value(resource, quantity) if quantity is not None else 0


def _limit(limits: Mapping[str, str], resource: str) -> int | None:
    quantity = limits.get(resource)
    return quantity_value(resource, quantity) if quantity is not None else None


def _as_body(requests: Mapping[str, str], limits: Mapping[str, str]) -> Body:
    body: Body = {}
    if requests:
        body["requests"] = dict(requests)
    if limits:
        body["limits"] = dict(limits)
    return body


@dataclass(frozen=True)
class Envelope:
    """Pod-level requests and limits (`spec.resources` of the pod)."""

    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)

    def names(self, resource: str) -> bool:
        return resource in self.requests or resource in self.limits

    def request(self, resource: str) -> int:
        return _request(self.requests, self.limits, resource)

    def limit(self, resource: str) -> int | None:
        return _limit(self.limits, resource)

    def same_as(self, other: Envelope | None) -> bool:
        return (
            other is not None
            and _same(self.requests, other.requests)
            and _same(self.limits, other.limits)
        )

    def as_body(self) -> Body:
        return _as_body(self.requests, self.limits)


@dataclass(frozen=True)
class ContainerResources:
    """One container's requests and limits, as the spec (or an allocation) states them."""

    name: str
    kind: ContainerKind = "regular"
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)
    resize_policy: Mapping[str, str] = field(default_factory=dict)

    def request(self, resource: str) -> int:
        return _request(self.requests, self.limits, resource)

    def limit(self, resource: str) -> int | None:
        return _limit(self.limits, resource)

    def same_as(self, other: ContainerResources) -> bool:
        """Equal requests and limits by value, on every resource either names."""
        return _same(self.requests, other.requests) and _same(self.limits, other.limits)

    def as_body(self) -> Body:
        return _as_body(self.requests, self.limits)

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
    """A pod's containers in spec order: init containers (sidecars among them), then regulars,
    and the pod-level envelope if the spec sets one."""

    containers: tuple[ContainerResources, ...]
    envelope: Envelope | None = None

    def container(self, name: str) -> ContainerResources | None:
        return next((c for c in self.containers if c.name == name), None)

    def same_as(self, other: PodResources) -> bool:
        if [c.name for c in self.containers] != [c.name for c in other.containers]:
            return False
        if (self.envelope is None) != (other.envelope is None):
            return False
        if self.envelope is not None and not self.envelope.same_as(other.envelope):
            return False
        return all(a.same_as(b) for a, b in zip(self.containers, other.containers, strict=True))

    def requests(self, resource: str) -> int:
        """The pod's effective request: the envelope's if it names the resource; else running
        containers and sidecars together, or the largest init container with the sidecars
        started before it, whichever is more."""
        if self.envelope is not None and self.envelope.names(resource):
            return self.envelope.request(resource)
        return self.container_requests(resource)

    def container_requests(self, resource: str) -> int:
        """What the containers ask for together, whatever the envelope says."""
        sidecars = 0
        largest_init = 0
        for container in self.containers:
            if container.kind == "sidecar":
                sidecars += container.request(resource)
            elif container.kind == "init":
                largest_init = max(largest_init, sidecars + container.request(resource))
        regular = sum(c.request(resource) for c in self.containers if c.kind == "regular")
        return max(regular + sidecars, largest_init)

    def limits(self, resource: str) -> int | None:
        """The pod's limit as upstream aggregates it: the envelope's, else the sum of the
        running containers' limits (or the largest init container's), None if no container
        sets one."""
        if self.envelope is not None and self.envelope.limit(resource) is not None:
            return self.envelope.limit(resource)
        running = [c.limit(resource) for c in self.containers if c.runs]
        init = [c.limit(resource) for c in self.containers if not c.runs]
        if all(limit is None for limit in [*running, *init]):
            return None
        summed = sum(limit for limit in running if limit is not None)
        return max([summed, *(limit for limit in init if limit is not None)])

    def memory_limit(self) -> int | None:
        """The pod cgroup's memory limit: the envelope's if it sets one, else the sum over
        running containers if all have one."""
        if self.envelope is not None and self.envelope.limit(MEMORY) is not None:
            return self.envelope.limit(MEMORY)
        limits = [c.limit(MEMORY) for c in self.containers if c.runs]
        if not limits or any(limit is None for limit in limits):
            return None
        return sum(limit for limit in limits if limit is not None)

    def qos_class(self) -> QOSClass:
        """From the envelope alone if the pod sets one (as the API computes it in 1.37)."""
        if self.envelope is not None:
            return _envelope_qos_class(self.envelope)
        return qos_class(self.containers)


def _envelope_qos_class(envelope: Envelope) -> QOSClass:
    """Per resource: request == limit > 0 is Guaranteed, both unset BestEffort, else
    Burstable; the pod is Guaranteed or BestEffort only if cpu and memory agree."""
    shapes = set()
    for resource in RESIZABLE:
        request, limit = envelope.requests.get(resource), envelope.limits.get(resource)
        request_value = quantity_value(resource, request) if request else 0
        limit_value = quantity_value(resource, limit) if limit else 0
        if request_value != limit_value:
            return "Burstable"
        shapes.add("BestEffort" if request_value == 0 else "Guaranteed")
    if shapes == {"Guaranteed"}:
        return "Guaranteed"
    return "BestEffort" if shapes == {"BestEffort"} else "Burstable"


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
    return PodResources(tuple(init + regular), _envelope(spec))


def _envelope(spec: Body) -> Envelope | None:
    """The pod-level resources, if the spec sets any request or limit."""
    resources = spec.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    if not requests and not limits:
        return None
    return Envelope(dict(requests), dict(limits))


def total_requests(pods: Iterable[PodResources], resource: str) -> int:
    return sum(pod.requests(resource) for pod in pods)
