"""What to do with one pod now: nothing, wait, resize in place, revert, or recreate.

The outcome of the last resize is read from the pod itself (its conditions, and the generation
the kubelet observed), so a restarted updater picks up where the last one was.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from bridgescale.policy import UpdateMode, WorkloadPolicy
from bridgescale.quantity import POD
from bridgescale.updater.pods import SIZED, Container, Pod, Sized
from bridgescale.updater.recommendations import ContainerRecommendation
from bridgescale.updater.settings import UpdaterSettings
from bridgescale.updater.sizing import ContainerChange, Resize, Usage, plan_resize

PENDING = "PodResizePending"
IN_PROGRESS = "PodResizeInProgress"


class ResizeState(StrEnum):
    SETTLED = "Settled"
    UNOBSERVED = "Unobserved"  # the kubelet has not seen the latest generation yet
    DEFERRED = "Deferred"
    INFEASIBLE = "Infeasible"
    IN_PROGRESS = "InProgress"
    ERROR = "Error"


class RecreateReason(StrEnum):
    INFEASIBLE = "Infeasible"
    DEFERRED_TIMEOUT = "DeferredTimeout"
    IN_PROGRESS_TIMEOUT = "InProgressTimeout"
    CLAIMS_NOT_RESIZABLE = "ClaimsNotResizable"  # kubernetes/kubernetes#138641
    CLAIM_SWAP = "ClaimSwap"
    GPU_UNHEALTHY = "GPUUnhealthyMigration"  # an Unhealthy or tainted device: a healthy one


@dataclass(frozen=True)
class Outcome:
    state: ResizeState
    since: dt.datetime | None = None
    message: str = ""


@dataclass(frozen=True)
class Skip:
    reason: str


@dataclass(frozen=True)
class Wait:
    reason: str


@dataclass(frozen=True)
class Recreate:
    reason: RecreateReason
    message: str


Decision = Skip | Wait | Resize | Recreate


def resize_outcome(pod: Pod) -> Outcome:
    """Where the pod's last resize stands, as the kubelet reports it."""
    if pod.observed_generation is not None and pod.observed_generation < pod.generation:
        return Outcome(ResizeState.UNOBSERVED)
    pending = pod.conditions.get(PENDING)
    if pending is not None:
        state = ResizeState.INFEASIBLE if pending.reason == "Infeasible" else ResizeState.DEFERRED
        return Outcome(state, pending.since, pending.message)
    progress = pod.conditions.get(IN_PROGRESS)
    if progress is not None:
        state = ResizeState.ERROR if progress.reason == "Error" else ResizeState.IN_PROGRESS
        return Outcome(state, progress.since, progress.message)
    return Outcome(ResizeState.SETTLED)


def recreate_reason(
    outcome: Outcome, now: dt.datetime, deferral_timeout: dt.timedelta, settings: UpdaterSettings
) -> RecreateReason | None:
    """Why in place cannot work for this pod, if it cannot."""
    waited = now - outcome.since if outcome.since else dt.timedelta(0)
    if outcome.state is ResizeState.INFEASIBLE:
        return RecreateReason.INFEASIBLE
    if outcome.state is ResizeState.DEFERRED and waited > deferral_timeout:
        return RecreateReason.DEFERRED_TIMEOUT
    if outcome.state is ResizeState.IN_PROGRESS and waited > settings.in_progress_timeout:
        return RecreateReason.IN_PROGRESS_TIMEOUT
    return None


def revert(pod: Pod) -> Resize | None:
    """The resize back to what the kubelet has applied, after it refused the last one."""
    changes = []
    for container in pod.containers:
        applied = pod.applied.get(container.name)
        if applied is None:
            continue
        requests = _restored(container.requests, applied.requests)
        limits = _restored(container.limits, applied.limits)
        if requests != container.requests or limits != container.limits:
            reason = ("the kubelet refused the last resize; back to the applied size",)
            changes.append(ContainerChange(container.name, requests, limits, container, reason))
    envelope = _revert_envelope(pod)
    return Resize(pod, tuple(changes), envelope) if changes or envelope else None


def _revert_envelope(pod: Pod) -> ContainerChange | None:
    envelope, applied = pod.envelope, pod.applied_envelope
    if envelope is None or applied is None:
        return None
    requests = _restored(envelope.requests, applied.requests)
    limits = _restored(envelope.limits, applied.limits)
    if requests == envelope.requests and limits == envelope.limits:
        return None
    reason = ("the kubelet refused the last resize; back to the applied size",)
    return ContainerChange(POD, requests, limits, envelope, reason)


def _restored(wanted: Mapping[Sized, float], applied: Mapping[Sized, float]) -> dict[Sized, float]:
    # Only values the kubelet reports go back; nothing is removed.
    return {r: applied.get(r, wanted[r]) for r in SIZED if r in wanted}


def _mode_skip(mode: UpdateMode) -> Skip | None:
    if mode is UpdateMode.OFF:
        return Skip("update mode Off: recommendations only")
    if mode is UpdateMode.INITIAL:
        return Skip("update mode Initial: pods are sized when they are created")
    return None


def _after_outcome(
    pod: Pod, policy: WorkloadPolicy, now: dt.datetime, settings: UpdaterSettings
) -> Decision | None:
    outcome = resize_outcome(pod)
    if outcome.state is ResizeState.SETTLED:
        return None
    if outcome.state is ResizeState.UNOBSERVED:
        return Wait(f"the kubelet has not observed generation {pod.generation} yet")
    if outcome.state is ResizeState.ERROR:
        return revert(pod) or Wait(f"resize failed: {outcome.message}")
    timeout = policy.deferral_timeout or settings.deferral_timeout
    reason = recreate_reason(outcome, now, timeout, settings)
    if reason is None:
        return Wait(f"resize {outcome.state.value}: {outcome.message}".rstrip(": "))
    if policy.mode is not UpdateMode.IN_PLACE_OR_RECREATE:
        return Wait(f"resize {reason.value}, but update mode {policy.mode.value} never recreates")
    return Recreate(reason, f"resize {outcome.state.value}: {outcome.message}".rstrip(": "))


def decide(
    pod: Pod,
    *,
    recommendations: Mapping[str, ContainerRecommendation],
    policy: WorkloadPolicy,
    usage: Mapping[str, Usage],
    now: dt.datetime,
    settings: UpdaterSettings,
) -> Decision:
    """The one thing to do with `pod` now."""
    skip = _mode_skip(policy.mode)
    if skip is not None:
        return skip
    if pod.phase != "Running" or pod.node_name is None or pod.terminating:
        return Skip(f"pod is {pod.phase}, not running on a node, or terminating")
    after = _after_outcome(pod, policy, now, settings)
    if after is not None:
        return after
    resize = plan_resize(pod, recommendations, policy, usage, settings)
    if resize is None:
        return Skip("requests and limits match the recommendation")
    if pod.last_resize and now - pod.last_resize < settings.cool_down:
        # Growth cannot wait; what would go down waits for the cool-down to end.
        rising = resize.increases_only()
        return rising or Wait(f"cool-down after the resize at {pod.last_resize}")
    return resize


def applied_matches(pod: Pod) -> bool:
    """True when the kubelet reports the pod's spec resources as applied to every container."""
    envelope = pod.envelope is None or _same(pod.envelope, pod.applied_envelope)
    return envelope and all(
        _same(container, pod.applied.get(container.name)) for container in pod.containers
    )


def _same(spec: Container, applied: Container | None) -> bool:
    return applied is not None and all(
        spec.requests.get(r) == applied.requests.get(r)
        and spec.limits.get(r) == applied.limits.get(r)
        for r in SIZED
    )
