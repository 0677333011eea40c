"""One pass of the updater over the opted-in namespaces: read pods and recommendations, decide
per pod, then act: scale-ups first, within rate limits, one recreation per workload at a time,
an Event for every decision that changes or holds something."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from bridgescale.logs import ObjectLogger
from bridgescale.policy import UpdateMode, WorkloadPolicy, policy_from_annotations
from bridgescale.updater.admission import Sizing, initial_resources
from bridgescale.updater.apply import (
    RecreateResult,
    ResizeResult,
    apply_resize,
    readable,
    recreate,
    restore_saved_pods,
)
from bridgescale.updater.claim_plans import ClaimPlan, ClaimPlanner
from bridgescale.updater.decide import (
    Decision,
    Recreate,
    RecreateReason,
    ResizeState,
    Skip,
    Wait,
    applied_matches,
    decide,
    resize_outcome,
)
from bridgescale.updater.metrics import SETTLED, UpdaterMetrics
from bridgescale.updater.placement import WorkloadKey, workload_of
from bridgescale.updater.pods import SIZED, Pod, Sized
from bridgescale.updater.ports import Cluster, NoUsage, UsageSource
from bridgescale.updater.recommendations import (
    Recommendation,
    RecommendationProblem,
    recommendation_from_json,
)
from bridgescale.updater.settings import UpdaterSettings
from bridgescale.updater.sizing import Resize, Usage
from bridgescale.updater.timing import burst_ahead

logger = logging.getLogger("bridgescale.updater")

# Resizes the API server refuses for good, which a recreate at the new size can still carry out.
RECREATE_INSTEAD: dict[ResizeResult, tuple[RecreateReason, str]] = {
    ResizeResult.CLAIMS_NOT_RESIZABLE: (
        RecreateReason.CLAIMS_NOT_RESIZABLE,
        "the API server refused the resize of a container with DRA claims: ",
    ),
    ResizeResult.BEYOND_NODE: (
        RecreateReason.INFEASIBLE,
        "the new size does not fit the pod's node: ",
    ),
}
Clock = Callable[[], dt.datetime]
HELD = "its pods are left as they are until the annotation is fixed"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Action:
    """What one pass did with one pod, for logs, `--dry-run` and tests."""

    pod: str
    workload: str
    decision: str
    result: str


@dataclass
class Planned:
    key: WorkloadKey
    pod: Pod
    raw: Mapping[str, Any]
    decision: Decision
    recommendation: Recommendation
    policy: WorkloadPolicy
    claims: ClaimPlan = field(default_factory=ClaimPlan)

    @property
    def order(self) -> int:
        if isinstance(self.decision, Resize):
            return 0 if self.decision.scales_up else 1
        return 2 if isinstance(self.decision, Recreate) else 3


class RateLimit:
    """At most `per_minute` starts in any 60 s, overall and per key."""

    def __init__(self, overall: int, per_key: int) -> None:
        self.overall, self.per_key = overall, per_key
        self._all: deque[float] = deque()
        self._by_key: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def take(self, key: str, now: float) -> bool:
        with self._lock:  # resizes of one pass are carried out by several threads
            windows = (self._all, self._by_key[key])
            for window in windows:
                while window and now - window[0] >= 60:
                    window.popleft()
            if len(self._all) >= self.overall or len(self._by_key[key]) >= self.per_key:
                return False
            for window in windows:
                window.append(now)
            return True


@dataclass
class _InFlight:
    resizes: dict[str, tuple[str, str, int, dt.datetime]] = field(default_factory=dict)
    # uid of the evicted pod -> its workload and the uids its pods had then
    evictions: dict[str, tuple[WorkloadKey, frozenset[str]]] = field(default_factory=dict)


class Reconciler:
    def __init__(
        self,
        cluster: Cluster,
        settings: UpdaterSettings,
        metrics: UpdaterMetrics,
        *,
        usage: UsageSource | None = None,
        dry_run: bool = False,
        clock: Clock = utc_now,
    ) -> None:
        self.cluster = cluster
        self.settings = settings
        self.metrics = metrics
        self.usage = usage or NoUsage()
        self.dry_run = dry_run
        self.clock = clock
        self.limit = RateLimit(
            settings.max_changes_per_minute, settings.max_workload_changes_per_minute
        )
        self.in_flight = _InFlight()
        self._told: dict[str, str] = {}
        self._told_lock = threading.Lock()
        self.claims = ClaimPlanner(cluster, settings, self.usage, clock)

    # --- one pass ---------------------------------------------------------------------------

    def run_pass(self) -> list[Action]:
        actions: list[Action] = []
        states: dict[str, list[ResizeState]] = {}
        self.usage.refresh()
        self.claims.begin_pass()
        for namespace in self.cluster.opted_in_namespaces():
            if not self.dry_run:
                for name in restore_saved_pods(self.cluster, namespace):
                    logger.info("recreated bare pod %s/%s from its saved manifest", namespace, name)
            planned = self._plan_namespace(namespace)
            states[namespace] = [resize_outcome(item.pod).state for item in planned]
            planned.sort(key=lambda item: item.order)
            actions += self._carry_out_all(planned)
        self.metrics.count_unfinished(states)
        self.claims.end_pass()
        return actions

    def _carry_out_all(self, planned: list[Planned]) -> list[Action]:
        """Resizes first, several at once (each is a PATCH of its own pod and its Events, and
        waiting for each in turn is what makes a fleet-wide change slow); then the rest, one by
        one, as a recreate depends on what the ones before it did."""
        resizes = [item for item in planned if isinstance(item.decision, Resize)]
        others = [item for item in planned if not isinstance(item.decision, Resize)]
        if len(resizes) > 1 and self.settings.resize_workers > 1:
            with ThreadPoolExecutor(self.settings.resize_workers) as pool:
                done = list(pool.map(self._carry_out, resizes))
        else:
            done = [self._carry_out(item) for item in resizes]
        return done + [self._carry_out(item) for item in others]

    def _recommendations(self, namespace: str) -> dict[tuple[str, str], Recommendation]:
        found = {}
        for raw in self.cluster.list_recommendations(namespace):
            try:
                recommendation = recommendation_from_json(raw)
            except (RecommendationProblem, KeyError) as error:
                regarding = _ref(raw, "ResourceRecommendation", "bridgescale.dev/v1alpha1")
                self._tell(regarding, "RecommendationUnusable", str(error), warning=True)
                continue
            found[(recommendation.target_kind, recommendation.target_name)] = recommendation
        return found

    def _workloads(self, namespace: str) -> dict[WorkloadKey, list[tuple[Pod, Mapping[str, Any]]]]:
        groups: dict[WorkloadKey, list[tuple[Pod, Mapping[str, Any]]]] = defaultdict(list)
        for raw in self.cluster.list_pods(namespace):
            pod = readable(raw)
            if isinstance(pod, str):
                self._tell(_ref(raw, "Pod", "v1"), "PodUnreadable", pod, warning=True)
                continue
            key = workload_of(pod)
            if key is not None:
                groups[key].append((pod, raw))
        return groups

    def _policy(self, key: WorkloadKey) -> tuple[WorkloadPolicy, str | None]:
        """The workload's policy, and why its pods are held when an annotation is unusable: a
        mistyped mode or bound must not let the updater act on what the owner did not ask."""
        annotations = self.cluster.workload_annotations(key.namespace, key.kind, key.name)
        policy, problems = policy_from_annotations(annotations)
        if not problems:
            return policy, None
        held = f"{'; '.join(p.unusable() for p in problems)}; {HELD}"
        if self._tell(_workload_ref(key), "PolicyUnusable", held, warning=True):
            logger.warning("%s %s/%s: %s", key.kind, key.namespace, key.name, held)
        return policy, held

    def _plan_namespace(self, namespace: str) -> list[Planned]:
        recommendations = self._recommendations(namespace)
        planned = []
        for key, members in self._workloads(namespace).items():
            recommendation = recommendations.get((key.kind, key.name))
            if recommendation is None:
                continue
            policy, held = self._policy(key)
            if held is not None:
                planned += [
                    Planned(key, pod, raw, Skip(held), recommendation, policy)
                    for pod, raw in members
                ]
                continue
            recreating = any(_disrupted(raw) for _, raw in members)
            for pod, raw in members:
                decision = self._decide(pod, recommendation, policy)
                claims = self.claims.plan(
                    key, pod, raw, recommendation, decision=decision, mode=policy.mode
                )
                decision = claims.decision or decision
                if isinstance(decision, Recreate) and recreating:
                    decision = Wait("another pod of this workload is being recreated")
                recreating = recreating or isinstance(decision, Recreate)
                item = Planned(key, pod, raw, decision, recommendation, policy, claims)
                planned.append(item)
        self._clean_templates(namespace)
        return planned

    def _clean_templates(self, namespace: str) -> None:
        if not self.dry_run:
            self.claims.clean_templates(namespace)

    def _decide(self, pod: Pod, recommendation: Recommendation, policy: WorkloadPolicy) -> Decision:
        self._observe_settled(pod)
        usage = self.usage.usage(pod.namespace, pod.name)
        settings = self.settings
        if burst_ahead(
            recommendation.forecast, self.clock(), settings.burst_lookahead, settings.burst_ratio
        ):
            usage = {
                c.name: replace(usage.get(c.name, Usage()), burst_forecast=True)
                for c in pod.containers
            }
        return decide(
            pod,
            recommendations=recommendation.containers,
            policy=policy,
            usage=usage,
            now=self.clock(),
            settings=self.settings,
        )

    # --- acting -----------------------------------------------------------------------------

    def _carry_out(self, item: Planned) -> Action:
        decision, pod = item.decision, item.pod
        log = ObjectLogger(logger, namespace=pod.namespace, kind="Pod", name=pod.name, uid=pod.uid)
        if isinstance(decision, Skip):
            log.debug("%s: no action: %s", pod.name, decision.reason)
            return Action(pod.key, str(item.key), "Skip", decision.reason)
        if isinstance(decision, Wait):
            log.info("%s: waiting: %s", pod.name, decision.reason)
            self._tell(_pod_ref(pod), "ResizeWaiting", decision.reason)
            return Action(pod.key, str(item.key), "Wait", decision.reason)
        if self.dry_run:
            log.info("%s: dry run, would %s", pod.name, _describe(decision))
            return Action(pod.key, str(item.key), type(decision).__name__, "dry run")
        if not self.limit.take(str(item.key), time.monotonic()):
            log.info("%s: rate limited, later: %s", pod.name, _describe(decision))
            return Action(pod.key, str(item.key), type(decision).__name__, "RateLimited")
        if isinstance(decision, Resize):
            return self._resize(item, decision, log)
        return self._recreate(item, decision, log)

    def _resize(self, item: Planned, resize: Resize, log: ObjectLogger) -> Action:
        def replan(fresh: Pod) -> Resize | None:
            again = self._decide(fresh, item.recommendation, item.policy)
            return again if isinstance(again, Resize) else None

        outcome = apply_resize(self.cluster, resize, replan)
        self.metrics.resizes.labels(outcome.result.value).inc()
        pod = item.pod
        if outcome.result is ResizeResult.ACCEPTED and outcome.pod is not None:
            log.info("resized %s: %s", pod.name, outcome.message)
            note = f"resized {outcome.message} ({'; '.join(_reasons(resize))})"
            self._tell(_pod_ref(pod), "Resized", note)
            self._tell(_workload_ref(item.key), "Resized", f"{pod.name}: {note}")
            started = (pod.namespace, pod.name, outcome.pod.generation, self.clock())
            self.in_flight.resizes[pod.uid] = started
        elif outcome.result in RECREATE_INSTEAD:
            reason, message = RECREATE_INSTEAD[outcome.result]
            recreate_instead = Recreate(reason, message + outcome.message)
            if item.policy.mode is UpdateMode.IN_PLACE_OR_RECREATE:
                return self._recreate(item, recreate_instead, log)
            self._tell(_pod_ref(pod), "ResizeRefused", recreate_instead.message, warning=True)
        elif outcome.result in {ResizeResult.REFUSED, ResizeResult.CONFLICT}:
            log.warning("%s: resize refused: %s", pod.name, outcome.message)
            self._tell(_pod_ref(pod), "ResizeRefused", outcome.message, warning=True)
        return Action(pod.key, str(item.key), "Resize", outcome.result.value)

    def _recreate(self, item: Planned, decision: Recreate, log: ObjectLogger) -> Action:
        pod = item.pod
        wanted = recommended_total(pod, item.recommendation, item.policy)
        before = frozenset(
            str(raw["metadata"]["uid"])
            for raw in self.cluster.list_pods(pod.namespace)
            if (known := readable(raw)) and not isinstance(known, str)
            and workload_of(known) == item.key
        )  # fmt: skip
        outcome = self.claims.prepare(pod, item.claims.swaps, item.claims.migrations)
        if outcome is None:
            templates = self.cluster.claim_templates(item.key)
            sizing = Sizing(item.recommendation, item.policy, claim_templates=templates)
            outcome = recreate(self.cluster, pod, item.raw, wanted, sizing)
        action = Action(pod.key, str(item.key), "Recreate", outcome.result.value)
        if outcome.result is RecreateResult.EVICTED:
            self.metrics.recreations.labels(decision.reason.value).inc()
            self.metrics.claim_swaps.inc(len(item.claims.swaps) + len(item.claims.migrations))
            self.in_flight.evictions[pod.uid] = (item.key, before)
            note = f"recreating ({decision.reason.value}: {decision.message})"
            log.info("%s: %s", pod.name, note)
            event = "GPUUnhealthyMigration" if item.claims.migrations else "Recreating"
            self._tell(_pod_ref(pod), event, note)
            self._tell(_workload_ref(item.key), event, f"{pod.name}: {note}")
        elif outcome.result is RecreateResult.BLOCKED:
            note = (
                f"recreate ({decision.reason.value}) blocked by a PodDisruptionBudget: "
                f"{outcome.message}; retrying later"
            )
            log.warning("%s: %s", pod.name, note)
            self._tell(_pod_ref(pod), "EvictionBlocked", note, warning=True)
            self._tell(
                _workload_ref(item.key), "EvictionBlocked", f"{pod.name}: {note}", warning=True
            )
        elif outcome.result is not RecreateResult.GONE:
            note = f"recreate ({decision.reason.value}) not done: {outcome.message}; retrying later"
            log.warning("%s: %s", pod.name, note)
            self._tell(_pod_ref(pod), "RecreateDeferred", note, warning=True)
        return action

    # --- outcomes ---------------------------------------------------------------------------

    def _observe_settled(self, pod: Pod) -> bool:
        """Count a resize this updater made once the kubelet has applied it; True when the
        kubelet has answered (applied, or Deferred, Infeasible, Error)."""
        started = self.in_flight.resizes.get(pod.uid)
        if started is None:
            return True
        _, _, generation, at = started
        if (pod.observed_generation or 0) < generation:
            return False
        state = resize_outcome(pod).state
        if state is ResizeState.SETTLED and applied_matches(pod):
            self.metrics.resize_pending.observe((self.clock() - at).total_seconds())
            self.metrics.resizes.labels(SETTLED).inc()
            del self.in_flight.resizes[pod.uid]
            return True
        return state in {ResizeState.DEFERRED, ResizeState.INFEASIBLE, ResizeState.ERROR}

    def settle(self, timeout: dt.timedelta, poll_seconds: float = 1.0) -> bool:
        """Wait until the kubelet has answered each resize this updater started (applied it, or
        said Deferred, Infeasible or Error: the next pass acts on that) and each evicted pod is
        replaced; False on timeout."""
        deadline = time.monotonic() + timeout.total_seconds()
        while True:
            answered = set()
            for uid, (namespace, name, _, _) in list(self.in_flight.resizes.items()):
                raw = self.cluster.get_pod(namespace, name)
                pod = readable(raw) if raw else None
                if pod is None or isinstance(pod, str) or pod.uid != uid:
                    del self.in_flight.resizes[uid]
                elif self._observe_settled(pod):
                    answered.add(uid)
            for uid, (key, before) in list(self.in_flight.evictions.items()):
                restore_saved_pods(self.cluster, key.namespace)
                if self._replaced(key, uid, before):
                    del self.in_flight.evictions[uid]
            if set(self.in_flight.resizes) <= answered and not self.in_flight.evictions:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(poll_seconds)

    def _replaced(self, key: WorkloadKey, uid: str, before: frozenset[str]) -> bool:
        """The evicted pod is gone and a new pod of its workload exists."""
        live = [r for r in self.cluster.list_pods(key.namespace) if not _terminating(r)]
        uids = {
            pod.uid
            for raw in live
            if not isinstance(pod := readable(raw), str) and workload_of(pod) == key
        }
        return uid not in uids and bool(uids - before)

    def _tell(
        self, regarding: Mapping[str, str], reason: str, note: str, *, warning: bool = False
    ) -> bool:
        """An Event, once per object and message (a decision repeated each pass is told once);
        True when this call told it."""
        key = f"{regarding.get('kind')}/{regarding.get('namespace')}/{regarding.get('name')}"
        with self._told_lock:
            if self._told.get(key) == reason + note or self.dry_run:
                return False
            self._told[key] = reason + note
        self.cluster.emit(regarding, reason, note, warning=warning)
        return True


def recommended_total(
    pod: Pod, recommendation: Recommendation, policy: WorkloadPolicy
) -> dict[Sized, float]:
    """What the replacement pod will request, as the webhook will size it."""
    total: dict[Sized, float] = dict.fromkeys(SIZED, 0.0)
    sizing = Sizing(recommendation, policy)
    for container in pod.containers:
        planned = initial_resources(container, sizing, recommendation, pod.qos_class)
        requests = planned[0] if planned else container.requests
        for resource in SIZED:
            total[resource] += requests.get(resource, 0.0)
    return total


def _terminating(raw: Mapping[str, Any]) -> bool:
    return raw["metadata"].get("deletionTimestamp") is not None


def _disrupted(raw: Mapping[str, Any]) -> bool:
    return _terminating(raw) or (raw.get("status") or {}).get("phase") != "Running"


def _reasons(resize: Resize) -> list[str]:
    return [reason for change in resize.changes for reason in change.reasons]


def _describe(decision: Decision) -> str:
    if isinstance(decision, Resize):
        return f"resize {decision.describe()}"
    if isinstance(decision, Recreate):
        return f"recreate ({decision.reason.value}: {decision.message})"
    return decision.reason


def _ref(raw: Mapping[str, Any], kind: str, api_version: str) -> dict[str, str]:
    metadata = raw.get("metadata") or {}
    return {
        "apiVersion": api_version,
        "kind": kind,
        "namespace": str(metadata.get("namespace", "")),
        "name": str(metadata.get("name", "")),
        "uid": str(metadata.get("uid", "")),
    }


def _pod_ref(pod: Pod) -> dict[str, str]:
    return {"apiVersion": "v1", "kind": "Pod", "namespace": pod.namespace, "name": pod.name,
            "uid": pod.uid}  # fmt: skip


def _workload_ref(key: WorkloadKey) -> dict[str, str]:
    api_version = "v1" if key.kind == "Pod" else "apps/v1"
    return {"apiVersion": api_version, "kind": key.kind, "namespace": key.namespace,
            "name": key.name}  # fmt: skip
