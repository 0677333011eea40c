"""The kubelet's pod work for all simulated nodes: start pods, resize them in place, retry
deferred resizes, kill containers that pass their memory limit, and finish graceful deletions.

One thread owns all pod state (`PodWorker.run`): watch events arrive on a queue and timers fire
between them, so no decision races another. The metrics collector reads under `lock`. Statuses
go out through the status manager (`status.StatusWriter`) on threads of their own, and a resize
is admitted against the Node as last seen by the node watch, as the kubelet's informer has it.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from bridgescale import kube
from bridgescale.logs import ObjectLogger
from bridgescale.simulator import dra
from bridgescale.simulator.admission import (
    DEFERRED,
    Admitted,
    NodeCapacity,
    PendingResize,
    RetrySchedule,
    admit_resize,
    increases_requests,
    memory_decrease_error,
    retry_order,
)
from bridgescale.simulator.api import RawApi
from bridgescale.simulator.nodes import SimulatedNode
from bridgescale.simulator.pods import (
    HEALTHY,
    PodRecord,
    ResizeCondition,
    new_record,
    pod_status,
)
from bridgescale.simulator.resources import CPU, MEMORY, Body
from bridgescale.simulator.settings import SimulatorSettings
from bridgescale.simulator.status import StatusWrite, StatusWriter
from bridgescale.simulator.usage import Usage, container_usage

logger = logging.getLogger(__name__)

CFS_PERIOD_SECONDS = 0.1
CLAIM_RECHECK_SECONDS = 1.0
KILLED_EXIT_CODE = 137

TimerKind = Literal["retry", "actuate", "start", "usage"]


def pod_logger(record: PodRecord) -> ObjectLogger:
    """Lines about one pod, carrying its identity."""
    return ObjectLogger(
        logger, namespace=record.namespace, kind="Pod", name=record.name, uid=record.uid
    )


@dataclass(frozen=True)
class PodEvent:
    kind: str  # ADDED, MODIFIED, DELETED
    body: Body


@dataclass(frozen=True)
class DeviceHealthReport:
    """A device's health as its driver reports it to the kubelet (pool = node name here)."""

    pool: str
    device: str
    health: str

    @property
    def resource_id(self) -> str:
        return f"{dra.DRIVER}/{self.pool}/{self.device}"


@dataclass(order=True)
class Timer:
    due: float
    sequence: int
    kind: TimerKind = field(compare=False)
    uid: str = field(compare=False, default="")


class PodWorker:
    def __init__(
        self,
        api: RawApi,
        settings: SimulatorSettings,
        nodes: list[SimulatedNode],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = api
        self._settings = settings
        self.nodes = {node.name: node for node in nodes}
        self._clock = clock
        self.pods: dict[str, PodRecord] = {}
        self.lock = threading.Lock()
        self.events: queue.Queue[PodEvent | DeviceHealthReport] = queue.Queue()
        self._device_health: dict[str, str] = {}  # resource id -> health, when not Healthy
        self._timers: list[Timer] = []
        self._sequence = itertools.count()
        self._pending_resizes: list[str] = []
        self._retry = RetrySchedule(
            settings.deferred_retry_initial_seconds, settings.deferred_retry_seconds
        )
        self.status = StatusWriter(api, self._knows)
        self._allocatable: dict[str, Body] = {}  # node name -> allocatable, as last watched

    def _knows(self, uid: str) -> bool:
        with self.lock:
            return uid in self.pods

    # The loop

    def run(self, stop: threading.Event) -> None:
        self._schedule_at("retry", self._retry.start(time.monotonic()))
        self._schedule("usage", self._settings.usage_seconds)
        while not stop.is_set():
            wait = self._timers[0].due - time.monotonic() if self._timers else 1.0
            try:
                event = self.events.get(timeout=min(max(wait, 0.0), 1.0))
            except queue.Empty:
                event = None
            try:
                if isinstance(event, DeviceHealthReport):
                    self._on_health(event)
                elif event is not None:
                    self._on_event(event)
                self._fire_due_timers()
            except Exception:
                logger.exception("pod worker step failed; continuing")

    def _schedule(self, kind: TimerKind, delay: float, uid: str = "") -> None:
        self._schedule_at(kind, time.monotonic() + delay, uid)

    def _schedule_at(self, kind: TimerKind, due: float, uid: str = "") -> None:
        heapq.heappush(self._timers, Timer(due, next(self._sequence), kind, uid))

    def _fire_due_timers(self) -> None:
        while self._timers and self._timers[0].due <= time.monotonic():
            timer = heapq.heappop(self._timers)
            if timer.kind == "retry":
                if self._retry.is_due(time.monotonic()):  # else a later retry moved it
                    self._retry_pending_resizes("periodic")
            elif timer.kind == "usage":
                self._step_usage(self._settings.usage_seconds)
                self._schedule("usage", self._settings.usage_seconds)
            elif timer.kind == "actuate":
                self._actuate(timer.uid)
            elif timer.kind == "start":
                self._try_start(timer.uid)

    # Device health

    def report_health(self, node: str, device: str, health: str) -> None:
        """From any thread: a device's new health, applied by the worker thread."""
        self.events.put(DeviceHealthReport(node, device, health))

    def _on_health(self, report: DeviceHealthReport) -> None:
        """Record the health and report it in the status of every pod using the device."""
        if report.health == HEALTHY:
            self._device_health.pop(report.resource_id, None)
        else:
            self._device_health[report.resource_id] = report.health
        logger.info("device %s is %s", report.resource_id, report.health)
        for record in list(self.pods.values()):
            if record.running and any(d.resource_id == report.resource_id for d in record.devices):
                self._take_health(record)
                self._write_status(record)

    def _take_health(self, record: PodRecord) -> None:
        ids = {d.resource_id for d in record.devices}
        health = {i: h for i, h in self._device_health.items() if i in ids}
        with self.lock:
            record.device_health = health

    # Pod events

    def _on_event(self, event: PodEvent) -> None:
        metadata = event.body["metadata"]
        uid = metadata["uid"]
        if event.body["spec"].get("nodeName") not in self.nodes:
            return
        if event.kind == "DELETED":
            self._forget(uid)
        elif metadata.get("deletionTimestamp"):
            self._terminate(event.body)
        elif event.body.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return
        elif uid not in self.pods:
            self._admit(event.body)
        else:
            self._update(self.pods[uid], event.body)

    def _admit(self, body: Body) -> None:
        # TODO(pods bound past the scheduler are needed): check the new pod fits, as the
        # kubelet's admission does (OutOfcpu, OutOfmemory); the real scheduler ensures it here.
        record = new_record(body, self._clock())
        with self.lock:
            self.pods[record.uid] = record
        self._log(record).info("admitted on %s", record.node)
        self._try_start(record.uid)

    def _try_start(self, uid: str) -> None:
        """Start the containers once every claim is allocated and reserved for the pod."""
        record = self.pods.get(uid)
        if record is None or record.running:
            return
        devices = self._prepared_devices(record)
        if devices is None:
            self._schedule("start", CLAIM_RECHECK_SECONDS, uid)
            return
        now = self._clock()
        record.devices = devices
        self._take_health(record)
        record.running = True
        for runtime in record.containers.values():
            runtime.started = now
        self._write_status(record)
        if not record.desired.same_as(record.allocated):  # resized while it waited
            self._push_pending_resize(record.uid)
            self._retry_pending_resizes("pods added")

    def _prepared_devices(self, record: PodRecord) -> list[dra.AllocatedDevice] | None:
        """The devices of the pod's claims, or None while one is not ready for it."""
        claims = record.body["spec"].get("resourceClaims") or []
        if not claims:
            return []
        generated = {
            s["name"]: s.get("resourceClaimName")
            for s in record.body.get("status", {}).get("resourceClaimStatuses") or []
        }
        devices: list[dra.AllocatedDevice] = []
        for claim in claims:
            claim_name = claim.get("resourceClaimName") or generated.get(claim["name"])
            if not claim_name:
                return None
            try:
                body = self._api.read_claim(claim_name, record.namespace)
            except kube.NotFound:
                return None
            if not dra.claim_ready_for(body, record.uid):
                return None
            devices.extend(dra.allocated_devices(claim["name"], body))
        return devices

    def _update(self, record: PodRecord, body: Body) -> None:
        """A new version of a running pod: a resize to admit, or a pending one reverted."""
        old_generation = record.generation
        record.body = body
        if not record.running:
            return
        if record.generation == old_generation:
            return
        if not record.desired.same_as(record.allocated):
            self._push_pending_resize(record.uid)
            self._retry_pending_resizes("pod updated")
        elif record.pending is not None:
            record.pending = None
            self._write_status(record)

    def _terminate(self, body: Body) -> None:
        """The containers stop at once; then the pod object goes, as the kubelet deletes it
        with grace 0 after its containers stopped."""
        metadata = body["metadata"]
        self._forget(metadata["uid"])
        # Gone already, or a new pod of the same name: nothing left to stop.
        with contextlib.suppress(kube.NotFound, kube.Conflict):
            self._api.delete_pod_now(metadata["name"], metadata["namespace"], metadata["uid"])

    def _forget(self, uid: str) -> None:
        with self.lock:
            record = self.pods.pop(uid, None)
        if record is not None:
            self._log(record).info("stopped")
            self._retry_pending_resizes("pods removed")

    # Resize

    def _push_pending_resize(self, uid: str) -> None:
        if uid not in self._pending_resizes:
            self._pending_resizes.append(uid)
        self._sort_pending_resizes()

    def _sort_pending_resizes(self) -> None:
        pending = [
            PendingResize(
                uid=record.uid,
                increasing=increases_requests(record.desired, record.allocated),
                priority=record.priority,
                guaranteed=record.desired.qos_class() == "Guaranteed",
                pending_since=record.pending.since if record.pending else None,
            )
            for uid in self._pending_resizes
            if (record := self.pods.get(uid)) is not None
        ]
        self._pending_resizes = retry_order(pending)

    def _retry_pending_resizes(self, trigger: str) -> None:
        """Retry every pending resize in order; as upstream, the periodic retry comes
        `deferred_retry_seconds` after the last retry, whatever triggered it."""
        self._schedule_at("retry", self._retry.retried(time.monotonic()))
        still_deferred = []
        for uid in self._pending_resizes:
            record = self.pods.get(uid)
            if record is None:
                continue
            self._handle_resize(record, trigger)
            if record.pending is not None and record.pending.reason == DEFERRED:
                still_deferred.append(uid)
        self._pending_resizes = still_deferred

    def _handle_resize(self, record: PodRecord, trigger: str) -> None:
        desired, now = record.desired, self._clock()
        if desired.same_as(record.allocated):
            if record.pending is not None:
                record.pending = None
                self._write_status(record)
            return
        others = [
            other.allocated
            for other in self.pods.values()
            if other.node == record.node and other.uid != record.uid
        ]
        capacity = self._node_capacity(record.node)
        verdict = admit_resize(capacity, desired, record.allocated, others, record.priority)
        if isinstance(verdict, Admitted):
            record.allocated = desired
            record.pending = None
            record.in_progress = ResizeCondition("", "", record.generation, now)
            self._log(record).info("resize allocated (%s)", trigger)
            self._write_status(record)
            self._schedule("actuate", self._settings.actuation_seconds, record.uid)
            return
        previous = record.pending
        fields = (verdict.reason, verdict.message, record.generation)
        record.pending = (
            previous.renewed(*fields, now) if previous else ResizeCondition(*fields, now)
        )
        if previous is None or _fields(previous) != fields:
            self._log(record).info("resize %s: %s", verdict.reason, verdict.message)
            self._write_status(record)

    def node_seen(self, name: str, allocatable: Body | None) -> None:
        """From the node watch: a Node's allocatable as it is now, None when it was deleted."""
        with self.lock:
            if allocatable is None:
                self._allocatable.pop(name, None)
            else:
                self._allocatable[name] = allocatable

    def _node_capacity(self, name: str) -> NodeCapacity:
        """The node as resize admission sees it: the allocatable of its Node object, as the
        kubelet reads the Node it last saw; a change is seen at the next retry, with no event."""
        node = self.nodes[name]
        with self.lock:
            allocatable = self._allocatable.get(name)
        if allocatable is None:  # not watched yet
            try:
                allocatable = self._api.read_node(name).get("status", {}).get("allocatable")
            except kube.NotFound:  # deleted; registered again at the next heartbeat
                return node.capacity
        return node.capacity_from(allocatable or {})

    def _actuate(self, uid: str) -> None:
        """Apply the allocated resources, unless a memory limit would drop below usage."""
        record = self.pods.get(uid)
        if record is None:
            return
        if not record.allocated.same_as(record.actual):
            usage = {name: runtime.working_set_bytes for name, runtime in record.containers.items()}
            error = memory_decrease_error(record.actual, record.allocated, usage)
            if error is not None:
                self._fail_actuation(record, error)
                return
            self._restart_for_resize(record)
            with self.lock:
                record.actual = record.allocated
        if record.in_progress is not None:
            record.in_progress = None
            self._log(record).info("resize completed")
            self._write_status(record)

    def _fail_actuation(self, record: PodRecord, error: str) -> None:
        current = record.in_progress
        generation = current.observed_generation if current else record.generation
        if current is None or (current.reason, current.message) != ("Error", error):
            record.in_progress = ResizeCondition("Error", error, generation, self._clock())
            self._log(record).warning("resize failed: %s", error)
            self._write_status(record)
        self._schedule("actuate", self._settings.resync_seconds, record.uid)

    def _restart_for_resize(self, record: PodRecord) -> None:
        """Containers whose changed resource has the `RestartContainer` policy restart."""
        now = self._clock()
        for container in record.allocated.containers:
            before = record.actual.container(container.name)
            if before is None:
                continue
            for resource in (CPU, MEMORY):
                changed = (before.request(resource), before.limit(resource)) != (
                    container.request(resource),
                    container.limit(resource),
                )
                if changed and container.resize_policy.get(resource) == "RestartContainer":
                    self.pods[record.uid].containers[container.name].restart(
                        "Error", KILLED_EXIT_CODE, now
                    )
                    break

    # Usage

    def _step_usage(self, seconds: float) -> None:
        now = self._clock()
        with self.lock:
            running = [record for record in self.pods.values() if record.running]
        for record in running:
            killed = False
            with self.lock:
                for container in record.actual.containers:
                    if container.runs:
                        killed |= self._use(record, container.name, seconds, now)
                killed |= self._pod_out_of_memory(record, now)
            if killed:
                self._write_status(record)

    def _use(self, record: PodRecord, name: str, seconds: float, now: float) -> bool:
        """One step of a container's usage; True if it was OOM-killed."""
        runtime = record.containers[name]
        resources = record.actual.container(name)
        assert resources is not None
        pod = f"{record.namespace}/{record.name}"
        usage = container_usage(record.annotations, pod, name, now - runtime.started, now)
        cpu_limit = resources.limit(CPU)
        cores = usage.cpu_cores
        if cpu_limit is not None:
            periods = round(seconds / CFS_PERIOD_SECONDS)
            runtime.periods += periods
            if cores * 1000 > cpu_limit:
                runtime.throttled_periods += periods
                cores = cpu_limit / 1000
        runtime.cpu_seconds += cores * seconds
        runtime.gpu_memory_bytes = self._gpu_use(record, name, usage)
        memory_limit = resources.limit(MEMORY)
        # TODO(restart back-off and restartPolicy simulated): an OOM-killed container restarts
        # at once, whatever the pod's restartPolicy; upstream waits (CrashLoopBackOff) and a
        # pod with restartPolicy Never fails.
        if memory_limit is not None and usage.memory_bytes > memory_limit:
            runtime.oom_events += 1
            runtime.restart("OOMKilled", KILLED_EXIT_CODE, now)
            restarted = container_usage(record.annotations, pod, name, 0.0, now)
            runtime.working_set_bytes = restarted.memory_bytes
            self._log(record).info("container %s OOMKilled", name)
            return True
        runtime.working_set_bytes = usage.memory_bytes
        return False

    def _pod_out_of_memory(self, record: PodRecord, now: float) -> bool:
        """The pod cgroup's limit (the envelope's memory limit) under the containers' summed
        working set: the kernel kills the largest; True if it did."""
        # TODO(pod-level cpu quota simulated): cpu is throttled per container limit only; a
        # pod-level cpu limit does not yet cap the containers' sum.
        envelope = record.actual.envelope
        limit = envelope.limit(MEMORY) if envelope is not None else None
        running = [record.containers[c.name] for c in record.actual.containers if c.runs]
        if limit is None or sum(r.working_set_bytes for r in running) <= limit:
            return False
        victim = max(running, key=lambda runtime: runtime.working_set_bytes)
        victim.oom_events += 1
        victim.restart("OOMKilled", KILLED_EXIT_CODE, now)
        pod = f"{record.namespace}/{record.name}"
        restarted = container_usage(record.annotations, pod, victim.name, 0.0, now)
        victim.working_set_bytes = restarted.memory_bytes
        self._log(record).info("container %s OOMKilled at the pod's memory limit", victim.name)
        return True

    def _gpu_use(self, record: PodRecord, name: str, usage: Usage) -> int:
        """GPU memory in use; a batch beyond the claim's capacity fails and is counted."""
        capacity = sum(d.memory_bytes for d in self.container_devices(record, name))
        if not capacity:
            return 0
        if usage.gpu_memory_bytes > capacity:
            record.containers[name].gpu_batch_failures += 1
            return capacity
        return usage.gpu_memory_bytes

    def container_devices(self, record: PodRecord, name: str) -> list[dra.AllocatedDevice]:
        spec: Body = next(
            (c for c in record.body["spec"].get("containers") or [] if c["name"] == name), {}
        )
        claims = {c["name"] for c in (spec.get("resources") or {}).get("claims") or []}
        return [device for device in record.devices if device.claim in claims]

    # Status

    def _write_status(self, record: PodRecord) -> None:
        with self.lock:
            status = pod_status(record, self.nodes[record.node].address)
        self.status.put(StatusWrite(record.uid, record.name, record.namespace, status))

    def _log(self, record: PodRecord) -> ObjectLogger:
        return pod_logger(record)

    def snapshot(self) -> Iterator[PodRecord]:
        """The running pods, for a reader holding `lock`."""
        return (record for record in self.pods.values() if record.running)


def _fields(condition: ResizeCondition) -> tuple[str, str, int]:
    return condition.reason, condition.message, condition.observed_generation
