"""The kubelet's decisions on an in-place resize, as pure functions (upstream v1.37.2).

- Admission: a resize is allocated atomically if the pod, at its desired size, fits the node's
  allocatable minus what the other pods have allocated. Otherwise it is pending: `Infeasible`
  (checked first, in upstream's order) for a memory request change of a container with swap
  that it would not restart, for a Guaranteed pod's cpu change under the static CPU manager and
  for its memory change under the static memory manager; else `Deferred` with the first
  resource that did not fit. A resize beyond the node's allocatable
  never reaches the kubelet in 1.37: the API server's PodResizeValidator refuses it (403).
- Retry order of deferred resizes: resizes that increase no request first, then higher
  priority, then Guaranteed before Burstable, then the longest pending. Besides the retries on
  pod events, a periodic one: first after an initial delay, then a fixed time after the last
  retry, whatever triggered it.
- Actuation: lowering a memory limit to or below current usage fails with the runtime's
  message, and the resize stays in progress with reason `Error`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from bridgescale.simulator.resources import CPU, MEMORY, ContainerResources, PodResources

DEFERRED = "Deferred"
INFEASIBLE = "Infeasible"
STATIC_CPU_MANAGER_MESSAGE = (
    'Resize is infeasible for Guaranteed Pods alongside CPU Manager policy "static"'
)
STATIC_MEMORY_MANAGER_MESSAGE = (
    'Resize is infeasible for Guaranteed Pods alongside Memory Manager policy "Static"'
)
SWAP_MESSAGE = "In-place resize of containers with swap is not supported."
# Pods at or above this priority (system-cluster-critical, system-node-critical) get no swap.
SYSTEM_CRITICAL_PRIORITY = 2_000_000_000


@dataclass(frozen=True)
class NodeCapacity:
    """What a node offers pods: its allocatable cpu (millicores), memory (bytes) and pods, and
    the kubelet policies that limit resizes."""

    cpu_millis: int
    memory_bytes: int
    pods: int
    static_cpu_manager: bool = False
    static_memory_manager: bool = False
    swap: bool = False  # the LimitedSwap behavior

    def allocatable(self, resource: str) -> int:
        return {CPU: self.cpu_millis, MEMORY: self.memory_bytes, "pods": self.pods}[resource]


@dataclass(frozen=True)
class Admitted:
    pass


@dataclass(frozen=True)
class Pending:
    reason: Literal["Deferred", "Infeasible"]
    message: str


Verdict = Admitted | Pending


def admit_resize(
    node: NodeCapacity,
    desired: PodResources,
    allocated: PodResources,
    others: Sequence[PodResources],
    priority: int = 0,
) -> Verdict:
    """Whether the kubelet allocates `desired` now; `others` are the other pods' allocations
    and `priority` the pod's own."""
    infeasible = infeasibility(node, desired, allocated, priority)
    if infeasible is not None:
        return Pending("Infeasible", infeasible)
    shortage = first_shortage(node, desired, others)
    return Pending("Deferred", shortage) if shortage else Admitted()


def infeasibility(
    node: NodeCapacity, desired: PodResources, allocated: PodResources, priority: int
) -> str | None:
    """Upstream's message if the node's policies forbid the resize, in upstream's order."""
    critical = priority >= SYSTEM_CRITICAL_PRIORITY
    if node.swap and not critical and _swapping_memory_changes(desired, allocated):
        return SWAP_MESSAGE
    if desired.qos_class() != "Guaranteed":
        return None
    if node.static_cpu_manager and _request_changes(desired, allocated, CPU):
        return STATIC_CPU_MANAGER_MESSAGE
    if node.static_memory_manager and _request_changes(desired, allocated, MEMORY):
        return STATIC_MEMORY_MANAGER_MESSAGE
    return None


def _request_changes(desired: PodResources, allocated: PodResources, resource: str) -> bool:
    for container in desired.containers:
        before = allocated.container(container.name)
        if before is None or before.request(resource) != container.request(resource):
            return True
    return False


def _swapping_memory_changes(desired: PodResources, allocated: PodResources) -> bool:
    """Whether a container's memory request changes, it has swap before or after, and the
    resize does not restart it (its memory `resizePolicy` is not `RestartContainer`)."""
    for container in desired.containers:
        before = allocated.container(container.name)
        if before is None or before.request(MEMORY) == container.request(MEMORY):
            continue
        if before.resize_policy.get(MEMORY) == "RestartContainer":
            continue
        if limited_swap(desired, container) or limited_swap(allocated, before):
            return True
    return False


def limited_swap(pod: PodResources, container: ContainerResources) -> bool:
    """Whether the container may swap on a LimitedSwap node (critical pods aside): only in a
    Burstable pod, and only with a memory request that differs from its limit (or no limit)."""
    limit = container.limit(MEMORY)
    unequal = container.request(MEMORY) != (limit if limit is not None else 0)
    return pod.qos_class() == "Burstable" and unequal


def first_shortage(
    node: NodeCapacity, pod: PodResources, others: Sequence[PodResources]
) -> str | None:
    """The kubelet's message for the first resource (pods, cpu, memory) that does not fit."""
    wanted = {"pods": 1, CPU: pod.requests(CPU), MEMORY: pod.requests(MEMORY)}
    used = {
        "pods": len(others),
        CPU: sum(o.requests(CPU) for o in others),
        MEMORY: sum(o.requests(MEMORY) for o in others),
    }
    for resource in ("pods", CPU, MEMORY):
        capacity = node.allocatable(resource)
        if wanted[resource] > 0 and wanted[resource] > capacity - used[resource]:
            return (
                f"Node didn't have enough resource: {resource}, requested: {wanted[resource]}, "
                f"used: {used[resource]}, capacity: {capacity}"
            )
    return None


def increases_requests(desired: PodResources, allocated: PodResources) -> bool:
    """Whether the resize raises the pod's cpu or memory request."""
    return any(desired.requests(r) > allocated.requests(r) for r in (CPU, MEMORY))


@dataclass(frozen=True)
class PendingResize:
    """What the retry order looks at, for one pod with a deferred resize."""

    uid: str
    increasing: bool
    priority: int
    guaranteed: bool
    pending_since: float | None  # the PodResizePending condition's last transition


@dataclass
class RetrySchedule:
    """When deferred resizes are retried without a pod event (upstream's ticker, reset by every
    retry): `initial_seconds` after start, then `every_seconds` after the last retry. Times are
    seconds of a monotonic clock."""

    initial_seconds: float
    every_seconds: float
    due: float = math.inf

    def start(self, now: float) -> float:
        """The first periodic retry's time."""
        self.due = now + self.initial_seconds
        return self.due

    def retried(self, now: float) -> float:
        """A retry ran, on an event or periodically: the next periodic retry's time."""
        self.due = now + self.every_seconds
        return self.due

    def is_due(self, now: float) -> bool:
        return now >= self.due


def retry_order(pending: Sequence[PendingResize]) -> list[str]:
    """The uids in the order the kubelet retries them."""

    def key(resize: PendingResize) -> tuple[bool, int, bool, bool, float]:
        since = resize.pending_since
        return (
            resize.increasing,
            -resize.priority,
            not resize.guaranteed,
            since is None,
            since if since is not None else 0.0,
        )

    return [resize.uid for resize in sorted(pending, key=key)]


def memory_decrease_error(
    current: PodResources, desired: PodResources, usage: Mapping[str, int]
) -> str | None:
    """The runtime's refusal to set a memory limit at or below current usage, if it refuses.

    `usage` is each running container's memory usage in bytes. As upstream does, the message
    for a container quotes the whole pod's usage.
    """
    pod_usage = sum(usage.values())
    errors: list[str] = []
    current_pod, desired_pod = current.memory_limit(), desired.memory_limit()
    pod_limit_decreasing = desired_pod is not None and (
        current_pod is None or desired_pod < current_pod
    )
    if pod_limit_decreasing and desired_pod is not None and pod_usage >= desired_pod:
        errors.append(
            f"attempting to set pod memory limit ({desired_pod}) below current usage ({pod_usage})"
        )
    for container in desired.containers:
        before = current.container(container.name)
        limit = container.limit(MEMORY)
        old_limit = before.limit(MEMORY) if before else None
        if limit is None or (old_limit is not None and limit >= old_limit):
            continue
        if usage.get(container.name, 0) >= limit:
            errors.append(
                f'attempting to set container "{container.name}" memory limit ({limit}) '
                f"below current usage ({pod_usage})"
            )
    if not errors:
        return None
    joined = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
    return f"cannot decrease memory limits: {joined}"
