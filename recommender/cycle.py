"""One recommender cycle: discover, read the new history, recommend, publish.

A cycle reads every opted-in namespace first and folds its new usage into the model, then asks
the model once, then publishes per namespace. A namespace whose history cannot be read keeps
its published recommendations and gets a `PrometheusUnavailable` condition; the others go on.

A workload whose pods set pod-level resources also gets an envelope: the summed usage of each
pod's containers is a series of the container POD, sized by the model's envelope variant in a
fleet of its own; containers without resources of their own then get no recommendation.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from bridgescale.history import History, NamespaceUsage, PrometheusUnavailable
from bridgescale.kube import KubeError, NotFound
from bridgescale.kube import checkpoints as kube_checkpoints
from bridgescale.kube import events as kube_events
from bridgescale.kube import recommendations as kube_recommendations
from bridgescale.kube import workloads as kube_workloads
from bridgescale.kube.workloads import ApiClient, Workload
from bridgescale.logs import ObjectLogger
from bridgescale.models import registry
from bridgescale.models.envelope import envelope_recommender
from bridgescale.policy import PolicyProblem
from bridgescale.quantity import POD, QuantityError, Resource, parse
from bridgescale.recommender.discovery import PodOwners
from bridgescale.recommender.fleet import (
    ContainerKey,
    Fleet,
    ModelRecommendation,
    OomKill,
    Saved,
    Usage,
)
from bridgescale.recommender.metrics import RecommenderMetrics
from bridgescale.recommender.policy import ContainerPolicy, container_policy
from bridgescale.recommender.publish import Publisher
from bridgescale.recommender.settings import RecommenderSettings
from bridgescale.recommender.status import ContainerResult, cap

logger = logging.getLogger(__name__)


def workload_logger(workload: Workload) -> ObjectLogger:
    ref = workload.ref
    return ObjectLogger(logger, namespace=ref.namespace, kind=ref.kind, name=ref.name, uid=ref.uid)


def container_key(workload: Workload, container: str) -> ContainerKey:
    return ContainerKey(workload.ref.namespace, workload.ref.kind, workload.ref.name, container)


@dataclass
class NamespaceRead:
    """What one cycle learnt about one namespace."""

    namespace: str
    workloads: list[Workload]
    policies: dict[ContainerKey, ContainerPolicy] = field(default_factory=dict)
    points: int = 0  # usage points read
    # Peak usage over what was read, by (pod, container, resource): the points themselves are
    # folded into the model and not kept, as at fleet scale they run to gigabytes.
    peaks: dict[tuple[str, str, Resource], float] = field(default_factory=dict)
    history_error: str | None = None


@dataclass(frozen=True)
class WorkloadResult:
    workload: Workload
    containers: list[tuple[ContainerKey, ContainerResult]]


@dataclass(frozen=True)
class CycleSummary:
    namespaces: int
    workloads: int
    points: int
    unavailable: list[str]
    seconds: float


class Engine:
    def __init__(
        self,
        api: ApiClient,
        history: History,
        settings: RecommenderSettings,
        metrics: RecommenderMetrics,
        *,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
    ) -> None:
        self.api = api
        self.history = history
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.read_only = read_only  # a report: log policy problems, record no Events
        self.fleet = Fleet(registry.create(settings.model))
        self.envelopes = Fleet(envelope_recommender(settings.model))
        self.cursor: dict[str, float] = {}  # namespace: history read up to here
        self._restored: set[str] = set()
        self._folding = threading.Lock()  # namespaces are read side by side (`read_workers`)
        self._reported: set[tuple[str, str]] = set()  # (uid, problem) already sent as Events
        self._last_checkpoint = clock()
        self.publisher = Publisher(
            api,
            metrics,
            workers=settings.publish_workers,
            refresh=dt.timedelta(seconds=settings.status_refresh_seconds),
            change_ratio=settings.status_change_ratio,
        )
        self.last_reads: list[NamespaceRead] = []

    # Reading -----------------------------------------------------------------------------

    def read(self, now: float, namespaces: list[str] | None = None) -> list[NamespaceRead]:
        """Discover and read the given namespaces, else the opted-in ones."""
        if namespaces is None:
            namespaces = kube_workloads.opted_in_namespaces(self.api)
        for gone in set(self.cursor) - set(namespaces):
            logger.info("namespace %s is no longer opted in", gone)
            del self.cursor[gone]
            self.metrics.forget(gone)
        if self.settings.read_workers == 1 or len(namespaces) < 2:
            return [self._read_namespace(namespace, now) for namespace in namespaces]
        # Prometheus answers one namespace while this process decodes and folds another.
        with ThreadPoolExecutor(self.settings.read_workers) as pool:
            return list(
                pool.map(lambda namespace: self._read_namespace(namespace, now), namespaces)
            )

    def _read_namespace(self, namespace: str, now: float) -> NamespaceRead:
        workloads = kube_workloads.list_workloads(self.api, namespace)
        read = NamespaceRead(namespace, workloads)
        if namespace not in self._restored:
            with self._folding:
                self._restore(namespace, workloads)
        self._policies(read)
        step = self.settings.step_seconds
        end = math.floor(now / step) * step
        earliest = end - self.settings.initial_history_hours * 3600
        start = max(self.cursor.get(namespace, earliest), earliest)
        pod_level = any(w.envelope is not None for w in workloads)
        # In pieces, each folded into the model before the next is read: a week of a large
        # namespace at once would hold gigabytes of points. What was folded stays read if a
        # later piece fails: the next cycle goes on from there.
        piece = max(step, math.floor(self.settings.history_chunk_hours * 3600 / step) * step)
        while True:
            piece_end = min(start + piece, end)
            try:
                usage = self.history.namespace_usage(namespace, start, piece_end, step, pod_level)
            except PrometheusUnavailable as error:
                self.metrics.errors.labels("prometheus").inc()
                logger.warning("history of namespace %s not read: %s", namespace, error)
                read.history_error = str(error)
                return read
            with self._folding:  # the model's state is one for all namespaces
                self._fold(read, usage, piece_end)
            self.cursor[namespace] = start = piece_end
            if piece_end >= end:
                return read

    def _restore(self, namespace: str, workloads: list[Workload]) -> None:
        """Load the namespace's checkpoints once, before its first history read."""
        by_target = {(w.ref.kind, w.ref.name): w for w in workloads}
        saved: dict[bool, list[Saved]] = {False: [], True: []}  # by "is an envelope"
        for checkpoint in kube_checkpoints.list_checkpoints(self.api, namespace):
            workload = by_target.get((checkpoint.target_ref["kind"], checkpoint.target_ref["name"]))
            if workload is None or checkpoint.model != self.fleet.model.name:
                continue
            for container in checkpoint.containers:
                key = container_key(workload, container.container)
                saved[container.container == POD].append(
                    Saved(
                        key,
                        container.state,
                        container.history_end,
                        container.oom_floor,
                        container.oom_time,
                        container.committed_hour,
                    )
                )
        ends = []
        for pod_level, items in saved.items():
            fleet = self.envelopes if pod_level else self.fleet
            problems = dict(fleet.restore_all(items))
            for key, error in problems.items():
                logger.warning(
                    "checkpoint of %s/%s %s not used, starting over: %s",
                    key.namespace,
                    key.workload,
                    key.container,
                    error,
                )
            ends += [item.history_end for item in items if item.key not in problems]
        if ends:
            self.cursor[namespace] = min(ends)
            logger.info(
                "namespace %s: %d containers restored from checkpoints", namespace, len(ends)
            )
        self._restored.add(namespace)

    def _policies(self, read: NamespaceRead) -> None:
        vpas = kube_recommendations.list_vpas(self.api, read.namespace)
        for workload in read.workloads:
            vpa = next(
                (
                    (v.name, v.resource_policy)
                    for v in vpas
                    if v.target_ref.get("kind") == workload.ref.kind
                    and v.target_ref.get("name") == workload.ref.name
                ),
                None,
            )
            for container in workload.sized():
                policy, problems = container_policy(container.name, workload.annotations, vpa)
                read.policies[container_key(workload, container.name)] = policy
                self._report(workload, problems)

    def _report(self, workload: Workload, problems: list[PolicyProblem]) -> None:
        for problem in problems:
            if (workload.ref.uid, str(problem)) in self._reported:
                continue
            workload_logger(workload).warning("%s", problem)
            if self.read_only:
                continue
            try:
                kube_events.record_event(
                    self.api, workload.ref, reason="InvalidPolicy", message=str(problem)
                )
            except KubeError as error:
                self.metrics.errors.labels("kubernetes").inc()
                workload_logger(workload).warning("event not recorded: %s", error)
                continue
            self._reported.add((workload.ref.uid, str(problem)))

    def _fold(self, read: NamespaceRead, read_usage: NamespaceUsage, end: float) -> None:
        owners = PodOwners(read.workloads)
        usage, kills, peaks = [], [], {}
        for series in read_usage.series:
            read.peaks[(series.pod, series.container, series.resource)] = max(
                read.peaks.get((series.pod, series.container, series.resource), 0.0),
                float(series.values.max()),
            )
            workload = owners.workload_of(series.pod)
            if workload is None or series.container not in {c.name for c in workload.sized()}:
                continue
            key = container_key(workload, series.container)
            usage.append(Usage(key, series.resource, series.times, series.values))
            if series.resource == "memory":
                peaks[(series.pod, series.container)] = float(series.values.max())
        for kill in read_usage.oom_kills:
            workload = owners.workload_of(kill.pod)
            if workload is None:
                continue
            limit = _memory_limit(workload, kill.container) or peaks.get((kill.pod, kill.container))
            if not limit:
                workload_logger(workload).warning(
                    "OOM kill of %s/%s without a known memory level", kill.pod, kill.container
                )
                continue
            workload_logger(workload).info(
                "OOM kill of %s/%s at %.0f bytes: memory goes above it",
                kill.pod,
                kill.container,
                limit,
            )
            kills.append(OomKill(container_key(workload, kill.container), kill.time, limit))
            envelope_limit = _memory_limit(workload, POD)
            if envelope_limit:  # the pod cgroup's limit may have been what killed it
                kills.append(OomKill(container_key(workload, POD), kill.time, envelope_limit))
        points = 0
        for fleet, pod_level in ((self.fleet, False), (self.envelopes, True)):
            points += fleet.observe(
                [u for u in usage if (u.key.container == POD) == pod_level],
                [k for k in kills if (k.key.container == POD) == pod_level],
                end,
            )
            fleet.advance([k for k in read.policies if (k.container == POD) == pod_level], end)
        read.points += read_usage.points
        self.metrics.series_read.inc(len(read_usage.series))
        self.metrics.points_read.inc(points)

    # Recommending ------------------------------------------------------------------------

    def fleet_of(self, container: str) -> Fleet:
        """The fleet that sizes `container`: the envelopes' for POD."""
        return self.envelopes if container == POD else self.fleet

    def recommend(self, reads: list[NamespaceRead], now: float) -> dict[str, list[WorkloadResult]]:
        found = {**self.fleet.recommend(now), **self.envelopes.recommend(now)}
        results: dict[str, list[WorkloadResult]] = {}
        for read in reads:
            results[read.namespace] = [
                self._workload_result(read, w, found) for w in read.workloads
            ]
        return results

    def _workload_result(
        self,
        read: NamespaceRead,
        workload: Workload,
        found: dict[ContainerKey, ModelRecommendation],
    ) -> WorkloadResult:
        containers = []
        for container in workload.sized():
            key = container_key(workload, container.name)
            policy = read.policies.get(key)
            model_result = found.get(key)
            if policy is None or not policy.enabled or model_result is None:
                continue
            result = cap(
                container.name,
                self.fleet.model.name,
                model_result,
                policy.policy,
                has_gpu_claim=bool(container.claims),
            )
            containers.append((key, result))
        return WorkloadResult(workload, containers)

    # The cycle ---------------------------------------------------------------------------

    def run_cycle(self, *, checkpoint: bool = False) -> CycleSummary:
        """One cycle; checkpoints are saved when due, or now with `checkpoint`."""
        started = time.monotonic()
        now = self.clock()
        reads = self.read(now)
        self.last_reads = reads
        results = self.recommend(reads, now)
        wall = dt.datetime.fromtimestamp(now, dt.UTC)
        for read in reads:
            self.publisher.publish(read, results[read.namespace], wall)
        # TODO(checkpoints spread over cycles, the oldest first): every workload's checkpoint
        # is written in the one cycle they come due in (bench/recommender.py: 99.8 s for
        # that cycle at 5,000 workloads).
        if checkpoint or now - self._last_checkpoint >= self.settings.checkpoint_interval_seconds:
            self.save_checkpoints(reads)
        seconds = time.monotonic() - started
        self.metrics.cycle_duration.observe(seconds)
        self.metrics.last_cycle.set(self.clock())
        return CycleSummary(
            namespaces=len(reads),
            workloads=sum(len(r.workloads) for r in reads),
            points=sum(r.points for r in reads),
            unavailable=[r.namespace for r in reads if r.history_error is not None],
            seconds=seconds,
        )

    def save_checkpoints(self, reads: list[NamespaceRead]) -> None:
        """Save the learnt state of every workload read this cycle."""
        workloads = [workload for read in reads for workload in read.workloads]
        with ThreadPoolExecutor(self.settings.publish_workers) as pool:
            list(pool.map(self._save_checkpoint, workloads))
        self._last_checkpoint = self.clock()

    def _save_checkpoint(self, workload: Workload) -> None:
        containers = []
        for container in workload.sized():
            key = container_key(workload, container.name)
            fleet = self.fleet_of(container.name)
            if key not in fleet.rows:
                continue
            row = fleet.rows[key]
            containers.append(
                kube_checkpoints.ContainerCheckpoint(
                    container=container.name,
                    history_end=float(fleet.history_end[row]),
                    state=fleet.save(key),
                    oom_floor=float(fleet.oom_floor[row]),
                    oom_time=float(fleet.oom_time[row]),
                    committed_hour=fleet.committed_hour,
                )
            )
        if not containers:
            return
        saved = kube_checkpoints.Checkpoint(
            workload.ref.namespace, workload.ref.target_ref(), self.fleet.model.name, containers
        )
        try:
            kube_checkpoints.save_checkpoint(self.api, workload.ref, saved)
        except NotFound:  # the workload went while we worked
            return
        except KubeError as error:
            self.metrics.errors.labels("kubernetes").inc()
            workload_logger(workload).warning("checkpoint not saved: %s", error)


def _memory_limit(workload: Workload, container: str) -> float | None:
    for spec in workload.sized():
        if spec.name == container and "memory" in spec.limits:
            try:
                return parse(spec.limits["memory"], "memory")
            except QuantityError:
                return None
    return None
