"""What size each container of a pod should have, and the resize that gets it there.

Rules (docs/updater.md has them for people):
- A target is the forecast peak, so it is applied to the limit where the container has one, and
  to the request where it has none: that value is the container's size for the resource.
- A size changes when it is outside [lowerBound, upperBound], differs from the target by more
  than the tolerance, or the container is at risk (working set near its memory limit, a recent
  OOM kill, heavy CPU throttling). The new size is the target, rounded up, within the workload
  policy's min and max.
- Memory goes down carefully: never below the recent peak times a margin, nor below the working
  set plus headroom, at most a bounded fraction per step, and not at all when a burst is forecast.
- The QoS class stays: Guaranteed moves requests and limits together; Burstable keeps each
  request at its old ratio below its limit (a request that was below its limit stays below
  it); BestEffort pods are left alone. Nothing is ever removed.
- A pod with pod-level resources (an envelope) is sized as a whole from the recommendation
  named `POD`, with the same rules on the containers' summed usage; its request never goes
  below the containers' own requests together (the API server refuses that). Containers that
  set no resources of their own are left so; those that do are sized as usual.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridgescale.policy import WorkloadPolicy
from bridgescale.quantity import POD, MiB, format_quantity, round_up
from bridgescale.updater.pods import SIZED, Amounts, Container, Pod, QoSClass, Sized
from bridgescale.updater.recommendations import ContainerRecommendation
from bridgescale.updater.settings import UpdaterSettings

_UNIT: Mapping[Sized, float] = {"cpu": 0.001, "memory": float(MiB)}


@dataclass(frozen=True)
class Usage:
    """Recent usage of one container, as the recommender's inputs saw it."""

    working_set: float | None = None  # bytes
    peak: float | None = None  # bytes, recent peak working set
    throttled_ratio: float = 0.0  # throttled CFS periods / periods
    oom_killed_recently: bool = False
    burst_forecast: bool = False
    peak_unknown: bool = False  # the usage history could not say: memory downscales wait
    gpu_memory_full: bool = False  # a claim's GPU memory used up: a grow cannot wait


@dataclass(frozen=True)
class ContainerChange:
    container: str
    requests: Amounts  # complete: every request the container keeps
    limits: Amounts
    before: Container
    reasons: tuple[str, ...] = ()

    @property
    def scales_up(self) -> bool:
        return any(
            self.requests.get(r, 0.0) > self.before.requests.get(r, 0.0)
            or self.limits.get(r, 0.0) > self.before.limits.get(r, 0.0)
            for r in SIZED
        )

    def increases_only(self) -> ContainerChange | None:
        """This change with every resource that would go down kept at its size; None when
        nothing goes up."""
        requests, limits = dict(self.requests), dict(self.limits)
        after = Container(self.container, self.requests, self.limits)
        for resource in SIZED:
            old, new = size(self.before, resource), size(after, resource)
            if old is not None and new is not None and new < old:
                for kept, before in ((requests, self.before.requests),
                                     (limits, self.before.limits)):  # fmt: skip
                    if resource in before:
                        kept[resource] = before[resource]
                    else:
                        kept.pop(resource, None)
        rising = ContainerChange(self.container, requests, limits, self.before, self.reasons)
        return rising if rising.scales_up else None

    def describe(self) -> str:
        after = Container(self.container, self.requests, self.limits)
        moves = []
        for resource in SIZED:
            old, new = size(self.before, resource), size(after, resource)
            if new is not None and new != old:
                burstable = self.limits.get(resource, new) != self.requests.get(resource, new)
                label = f"{resource} limit" if burstable else resource
                moves.append(
                    f"{label} {format_quantity(old or 0.0, resource)} -> "
                    f"{format_quantity(new, resource)}"
                )
        return f"{self.container or 'pod'} {', '.join(moves) or 'requests only'}"


@dataclass(frozen=True)
class Resize:
    """One PATCH of `pods/resize` covering every container that changes."""

    pod: Pod
    changes: tuple[ContainerChange, ...] = field(default_factory=tuple)
    envelope: ContainerChange | None = None  # of the pod-level resources

    @property
    def all_changes(self) -> tuple[ContainerChange, ...]:
        return (*self.changes, *((self.envelope,) if self.envelope else ()))

    @property
    def scales_up(self) -> bool:
        return any(change.scales_up for change in self.all_changes)

    def increases_only(self) -> Resize | None:
        """This resize without its decreases (during a cool-down); None when nothing rises."""
        changes = tuple(c for c in (c.increases_only() for c in self.changes) if c is not None)
        envelope = self.envelope.increases_only() if self.envelope else None
        if not changes and envelope is None:
            return None
        return Resize(self.pod, changes, envelope)

    def describe(self) -> str:
        return "; ".join(change.describe() for change in self.all_changes)

    def patch(self) -> dict[str, Any]:
        """A strategic merge patch with the pod's resourceVersion as precondition."""
        spec: dict[str, Any] = {}
        if self.changes:
            spec["containers"] = [
                {"name": change.container, "resources": _resources(change)}
                for change in self.changes
            ]
        if self.envelope is not None:
            spec["resources"] = _resources(self.envelope)
        return {"metadata": {"resourceVersion": self.pod.resource_version}, "spec": spec}


def _resources(change: ContainerChange) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for key, amounts in (("requests", change.requests), ("limits", change.limits)):
        if amounts:
            resources[key] = {r: format_quantity(v, r) for r, v in amounts.items()}
    return resources


def size(container: Container, resource: Sized) -> float | None:
    """What a target is applied to: the limit where there is one, else the request."""
    limit = container.limits.get(resource)
    return limit if limit is not None else container.requests.get(resource)


def memory_floor(usage: Usage, settings: UpdaterSettings) -> float:
    """The lowest memory size (limit, or request without one) a downscale may set."""
    floors = [0.0]
    if usage.peak is not None:
        floors.append(usage.peak * settings.memory_peak_margin)
    if usage.working_set is not None:
        floors.append(usage.working_set + settings.memory_headroom_bytes)
    return round_up(max(floors), "memory")


def risks(container: Container, usage: Usage, settings: UpdaterSettings) -> dict[Sized, str]:
    """The resources of `container` at risk now, with the reason."""
    found: dict[Sized, str] = {}
    limit = container.limits.get("memory")
    if usage.oom_killed_recently:
        found["memory"] = "OOM-killed recently"
    elif limit and usage.working_set and usage.working_set >= settings.risk_usage_ratio * limit:
        found["memory"] = "working set near the memory limit"
    if usage.throttled_ratio >= settings.risk_throttled_ratio:
        found["cpu"] = f"throttled in {usage.throttled_ratio:.0%} of CPU periods"
    return found


def _why(container: Container, recommendation: ContainerRecommendation, resource: Sized,
         settings: UpdaterSettings) -> str | None:  # fmt: skip
    target = recommendation.target[resource]
    current = size(container, resource)
    if current is None:
        return "no request yet"
    what = "limit" if resource in container.limits else "request"
    low = recommendation.lower_bound.get(resource)
    high = recommendation.upper_bound.get(resource)
    if (low is not None and current < low) or (high is not None and current > high):
        return f"{what} outside the recommended bounds"
    if abs(current - target) > settings.tolerance * target:
        return f"{what} differs from the target"
    return None


def _safe_memory(current: float, wanted: float, usage: Usage, settings: UpdaterSettings) -> float:
    """`wanted` memory, raised as far as a safe downscale needs."""
    if wanted >= current:
        return wanted
    if usage.burst_forecast or usage.peak_unknown:
        return current
    step = round_up(current * (1 - settings.memory_max_step_down), "memory")
    return min(current, max(wanted, step, memory_floor(usage, settings)))


def new_sizes(
    container: Container,
    recommendation: ContainerRecommendation,
    policy: WorkloadPolicy,
    usage: Usage,
    settings: UpdaterSettings,
) -> tuple[dict[Sized, float], list[str]]:
    """The sizes (limit, or request without one) that change, and why; empty when the
    container is fine as it is."""
    at_risk = risks(container, usage, settings)
    changed: dict[Sized, float] = {}
    reasons: list[str] = []
    for resource in SIZED:
        if resource not in policy.controlled or resource not in recommendation.target:
            continue
        current = size(container, resource)
        why = at_risk.get(resource) or _why(container, recommendation, resource, settings)
        if why is None:
            continue
        wanted = recommendation.target[resource]
        if resource in at_risk and current is not None:
            wanted = max(wanted, current * settings.risk_step_up)
        wanted = policy.clamp(resource, round_up(wanted, resource))
        if resource == "memory" and current is not None:
            wanted = _safe_memory(current, wanted, usage, settings)
        if wanted != current:
            changed[resource] = wanted
            reasons.append(f"{resource}: {why}")
    return changed, reasons


def _request_below(before: Container, resource: Sized, limit: float) -> float:
    """The request that goes with a new Burstable `limit`: at its old ratio to the limit, and
    strictly below it when it was below (so the pod never becomes Guaranteed)."""
    old_limit = before.limits[resource]
    old_request = before.requests.get(resource, old_limit)  # the API server's default
    if old_request >= old_limit:
        return limit
    request = round_up(limit * old_request / old_limit, resource)
    unit = _UNIT[resource]
    highest_below = (math.ceil(round(limit / unit, 6)) - 1) * unit
    return min(request, round_up(max(highest_below, 0.0), resource))


def plan_container(
    before: Container, changed: Mapping[Sized, float], qos: QoSClass
) -> tuple[dict[Sized, float], dict[Sized, float]]:
    """The complete requests and limits of a container whose sizes `changed`."""
    requests = dict(before.requests)
    limits = dict(before.limits)
    for resource, value in changed.items():
        if resource not in before.limits:
            requests[resource] = value  # no limit to aim at
        elif qos is QoSClass.GUARANTEED:
            requests[resource] = limits[resource] = value
        else:
            requests[resource] = _request_below(before, resource, value)
            limits[resource] = value
    return requests, limits


def plan_resize(
    pod: Pod,
    recommendations: Mapping[str, ContainerRecommendation],
    policy: WorkloadPolicy,
    usage: Mapping[str, Usage],
    settings: UpdaterSettings,
) -> Resize | None:
    """The resize this pod needs, or None when none does (or it is BestEffort)."""
    if pod.qos_class is QoSClass.BEST_EFFORT:
        return None
    changes = []
    for container in pod.containers:
        recommendation = recommendations.get(container.name)
        if recommendation is None:
            continue
        if pod.envelope is not None and not (container.requests or container.limits):
            continue  # sized by the envelope alone
        seen = usage.get(container.name, Usage())
        change = _plan(
            container,
            recommendation,
            policy=policy,
            usage=seen,
            settings=settings,
            qos=pod.qos_class,
        )
        if change is not None:
            changes.append(change)
    envelope = _plan_envelope(
        pod,
        recommendations.get(POD),
        policy=policy,
        usage=usage,
        settings=settings,
        changes=changes,
    )
    return Resize(pod, tuple(changes), envelope) if changes or envelope else None


def _plan(
    container: Container,
    recommendation: ContainerRecommendation,
    *,
    policy: WorkloadPolicy,
    usage: Usage,
    settings: UpdaterSettings,
    qos: QoSClass,
) -> ContainerChange | None:
    changed, reasons = new_sizes(container, recommendation, policy, usage, settings)
    if qos is QoSClass.GUARANTEED:
        changed = {r: v for r, v in changed.items() if r in container.limits}
    if not changed:
        return None
    requests, limits = plan_container(container, changed, qos)
    return ContainerChange(container.name, requests, limits, container, tuple(reasons))


def _plan_envelope(
    pod: Pod,
    recommendation: ContainerRecommendation | None,
    *,
    policy: WorkloadPolicy,
    usage: Mapping[str, Usage],
    settings: UpdaterSettings,
    changes: list[ContainerChange],
) -> ContainerChange | None:
    """The envelope's change, on the containers' summed usage."""
    if pod.envelope is None or recommendation is None:
        return None
    summed = usage.get(POD) or pod_usage([usage.get(c.name, Usage()) for c in pod.containers])
    change = _plan(
        pod.envelope,
        recommendation,
        policy=policy,
        usage=summed,
        settings=settings,
        qos=pod.qos_class,
    )
    if change is None:
        return None
    sized = {c.container: c.requests for c in changes}
    requests, limits = fit_envelope(
        change.requests,
        change.limits,
        [sized.get(c.name, c.requests) for c in pod.containers],
        pod.qos_class,
    )
    return ContainerChange(POD, requests, limits, pod.envelope, change.reasons)


def fit_envelope(
    requests: Amounts, limits: Amounts, containers: list[Amounts], qos: QoSClass
) -> tuple[dict[Sized, float], dict[Sized, float]]:
    """Pod-level requests no lower than the containers' requests together (the API server
    refuses less), limits no lower than the requests, a Guaranteed envelope kept so."""
    floored = {
        r: max(v, sum(container.get(r, 0.0) for container in containers))
        for r, v in requests.items()
    }
    raised = {r: max(v, floored.get(r, 0.0)) for r, v in limits.items()}
    if qos is QoSClass.GUARANTEED:
        floored = {r: raised.get(r, v) for r, v in floored.items()}
    return floored, raised


def pod_usage(containers: list[Usage]) -> Usage:
    """A pod's usage from its containers': sums of working sets and of peaks (the peaks may
    fall at different times, so their sum bounds the pod's peak from above)."""
    working_sets = [u.working_set for u in containers if u.working_set is not None]
    peaks = [u.peak for u in containers if u.peak is not None]
    return Usage(
        working_set=sum(working_sets) if working_sets else None,
        peak=sum(peaks) if peaks else None,
        throttled_ratio=max((u.throttled_ratio for u in containers), default=0.0),
        oom_killed_recently=any(u.oom_killed_recently for u in containers),
        burst_forecast=any(u.burst_forecast for u in containers),
    )
