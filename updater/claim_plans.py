"""New claims for running pods: GPU-memory claim swaps and migrations off Unhealthy or tainted
devices, planned each pass and timed by one rule (`timing.when_to_recreate`), then prepared
(the new templates, after a room check) just before the eviction."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bridgescale.policy import UpdateMode
from bridgescale.updater.apply import RecreateOutcome, RecreateResult
from bridgescale.updater.decide import Decision, Recreate, RecreateReason, Wait
from bridgescale.updater.gpu import (
    ClaimSwap,
    managed_workload,
    plan_claim_swaps,
    slices_can_hold,
    unused_templates,
)
from bridgescale.updater.health import Migration, plan_migrations, tainted_devices
from bridgescale.updater.placement import WorkloadKey
from bridgescale.updater.pods import Pod
from bridgescale.updater.ports import Cluster, Refused, UsageSource
from bridgescale.updater.recommendations import Recommendation
from bridgescale.updater.settings import UpdaterSettings
from bridgescale.updater.timing import FirstSeen, PlannedRecreate, sustained, when_to_recreate

logger = logging.getLogger("bridgescale.updater")
Raw = Mapping[str, Any]


@dataclass(frozen=True)
class ClaimPlan:
    swaps: tuple[ClaimSwap, ...] = ()
    migrations: tuple[Migration, ...] = ()
    decision: Decision | None = None  # Recreate now, or Wait for the planned moment


@dataclass(frozen=True)
class _DeviceState:
    """Slices, claims and taint rules, read once per pass for planning (the room check before
    an eviction reads them again)."""

    slices: list[dict[str, Any]]
    claims: list[dict[str, Any]]
    rules: list[dict[str, Any]]


class ClaimPlanner:
    def __init__(
        self,
        cluster: Cluster,
        settings: UpdaterSettings,
        usage: UsageSource,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.cluster, self.settings, self.usage, self.clock = cluster, settings, usage, clock
        self.first_seen = FirstSeen()  # planned recreates and wanted shrinks
        self._devices: _DeviceState | None = None

    def begin_pass(self) -> None:
        self.first_seen.begin_pass()
        self._devices = None

    def end_pass(self) -> None:
        self.first_seen.end_pass()

    def plan(
        self, key: WorkloadKey, pod: Pod, raw: Raw, recommendation: Recommendation, *,
        decision: Decision, mode: UpdateMode,
    ) -> ClaimPlan:  # fmt: skip
        """The pod's swaps and migrations, and what to do about them now."""
        if not pod.claim_templates or pod.terminating or pod.phase != "Running":
            return ClaimPlan()
        if isinstance(decision, Recreate):  # recreated anyway: onto healthy devices
            return ClaimPlan(migrations=tuple(self._migrations(key, pod, raw, [])))
        swaps = self._swaps(key, pod, raw, recommendation)
        migrations = self._migrations(key, pod, raw, swaps)
        swaps = [s for s in swaps if s.pod_claim not in {m.pod_claim for m in migrations}]
        plan = self._planned(pod, swaps, migrations)
        if plan is None:
            return ClaimPlan()
        if mode is UpdateMode.IN_PLACE_OR_RECREATE:
            timed = self._timed(pod, plan, recommendation)
        else:
            timed = Wait(f"{plan.message}: needs a new pod; mode {mode.value} never recreates")
        return ClaimPlan(tuple(swaps), tuple(migrations), timed)

    def _swaps(
        self, key: WorkloadKey, pod: Pod, raw: Raw, recommendation: Recommendation
    ) -> list[ClaimSwap]:
        templates = self.cluster.claim_templates_in(pod.namespace)
        slices = self._device_state().slices
        swaps = plan_claim_swaps(raw, recommendation, templates, slices, (key.kind, key.name))
        return [swap for swap in swaps if swap.grows or self._shrink_sustained(pod, swap)]

    def _shrink_sustained(self, pod: Pod, swap: ClaimSwap) -> bool:
        """A shrink goes only once the recommendation has allowed it for `gpu_shrink_after`."""
        key = f"{pod.uid}/shrink/{swap.pod_claim}/{swap.after}"
        return sustained(self.first_seen, key, self.clock(), self.settings.gpu_shrink_after)

    def _migrations(
        self, key: WorkloadKey, pod: Pod, raw: Raw, swaps: list[ClaimSwap]
    ) -> list[Migration]:
        """Moves off Unhealthy or tainted devices (on top of a swap of the same claim)."""
        templates = dict(self.cluster.claim_templates_in(pod.namespace))
        # A claim that is also being resized moves to a healthy device of the new size.
        templates.update({swap.old_template: swap.template for swap in swaps})
        devices = self._device_state()
        claims = {
            str(c["metadata"]["name"]): c
            for c in devices.claims
            if c["metadata"].get("namespace") == pod.namespace
        }
        return plan_migrations(
            raw, templates, claims, rules=devices.rules, slices=devices.slices,
            workload=(key.kind, key.name),
        )  # fmt: skip

    def _device_state(self) -> _DeviceState:
        if self._devices is None:
            self._devices = _DeviceState(
                self.cluster.list_slices(),
                self.cluster.list_claims(),
                self.cluster.list_device_taint_rules(),
            )
        return self._devices

    def _planned(
        self, pod: Pod, swaps: list[ClaimSwap], migrations: list[Migration]
    ) -> PlannedRecreate | None:
        """One planned recreate for the pod's claim swaps and migrations, if any."""
        if not swaps and not migrations:
            return None
        message = "; ".join([m.describe() for m in migrations] + [s.describe() for s in swaps])
        if migrations:
            deadlines = [m.deadline for m in migrations if m.deadline is not None]
            reason = RecreateReason.GPU_UNHEALTHY.value
            return PlannedRecreate(reason, message, min(deadlines) if deadlines else None)
        # TODO(pods with several GPU claims): any container's used-up GPU memory makes it urgent.
        usage = self.usage.usage(pod.namespace, pod.name)
        full = any(u.gpu_memory_full for u in usage.values())
        urgent = full and any(swap.grows for swap in swaps)
        return PlannedRecreate(RecreateReason.CLAIM_SWAP.value, message, None, urgent=urgent)

    def _timed(self, pod: Pod, plan: PlannedRecreate, recommendation: Recommendation) -> Decision:
        """Recreate now, or wait for the quietest forecast moment before the deadline."""
        migrating = plan.reason == RecreateReason.GPU_UNHEALTHY.value
        window = self.settings.gpu_health_window if migrating else self.settings.gpu_grow_window
        moment = when_to_recreate(
            plan,
            self.clock(),
            self.first_seen.since(f"{pod.uid}/plan/{plan.reason}", self.clock()),
            recommendation.forecast,
            window=window,
            lead=self.settings.recreate_lead,
        )
        if moment.go:
            return Recreate(RecreateReason(plan.reason), plan.message)
        at, latest = _clock_time(moment.at), _clock_time(moment.latest)
        return Wait(f"{plan.message}: recreate planned at {at}, the quietest forecast moment "
                    f"before {latest}")  # fmt: skip

    # --- acting -----------------------------------------------------------------------------

    def prepare(
        self, pod: Pod, swaps: Iterable[ClaimSwap], migrations: Iterable[Migration]
    ) -> RecreateOutcome | None:
        """Create the new claim templates once the slices can hold them (healthy, untainted
        devices only); an outcome when not."""
        changes: list[ClaimSwap | Migration] = [*swaps, *migrations]
        if not changes:
            return None
        slices, claims = self.cluster.list_slices(), self.cluster.list_claims()
        tainted = tainted_devices(slices, self.cluster.list_device_taint_rules())
        for change in changes:
            excluded = tainted | change.excluded if isinstance(change, Migration) else tainted
            if not slices_can_hold(change.request, slices, claims, pod.uid, excluded):
                message = f"no healthy device in the ResourceSlices can hold {change.describe()}"
                return RecreateOutcome(RecreateResult.NO_ROOM, message)
        existing = self.cluster.claim_templates_in(pod.namespace)
        for change in changes:
            created = _same_template(existing.values(), change.template)
            if created is None:
                made = self.cluster.create_claim_template(pod.namespace, change.template)
                if isinstance(made, Refused):
                    return RecreateOutcome(RecreateResult.REFUSED, f"new claim template: {made}")
                created = made
            logger.info("ResourceClaimTemplate %s for %s", created, change.describe())
        return None

    def clean_templates(self, namespace: str) -> None:
        """Delete the claim templates the updater made that nothing uses any more: not used
        by a pod, and not the newest of a workload that still exists."""
        templates = self.cluster.claim_templates_in(namespace).values()
        gone = {
            label
            for label in {managed_workload(t) for t in templates} - {None}
            if label and not self.cluster.workload_exists(namespace, *label.split(".", 1))
        }
        for name in unused_templates(templates, self.cluster.list_pods(namespace), gone):
            logger.info("deleting unused ResourceClaimTemplate %s/%s", namespace, name)
            self.cluster.delete_claim_template(namespace, name)


def _same_template(templates: Iterable[Raw], wanted: Raw) -> str | None:
    """A template the updater made earlier with the same labels and spec (a pass that created
    it and then could not evict): reused rather than made again."""
    for template in templates:
        labels = template["metadata"].get("labels") or {}
        if labels == wanted["metadata"]["labels"] and template.get("spec") == wanted["spec"]:
            return str(template["metadata"]["name"])
    return None


def _clock_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
