"""What the simulated kubelet knows of each pod it runs, and the status it reports for it.

Three sizes per pod, as upstream keeps them: `desired` (the spec), `allocated` (what admission
accepted; `allocatedResources` in the status) and `actual` (what the "runtime" applied;
`resources` in the status). A resize is pending while desired != allocated and in progress
while allocated != actual. Each size covers the containers and the pod-level envelope; the
status reports both levels, as a v1.37.2 kubelet with InPlacePodLevelResourcesVerticalScaling
does for every pod (the pod level aggregated from the containers where no envelope is set).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from bridgescale.simulator.dra import AllocatedDevice
from bridgescale.simulator.resources import (
    CPU,
    RESIZABLE,
    Body,
    ContainerResources,
    Envelope,
    PodResources,
    pod_resources,
)

RESIZE_PENDING = "PodResizePending"
RESIZE_IN_PROGRESS = "PodResizeInProgress"
HEALTHY = "Healthy"


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ResizeCondition:
    reason: str
    message: str
    observed_generation: int
    since: float  # last transition: kept while the reason stays the same

    def renewed(self, reason: str, message: str, generation: int, now: float) -> ResizeCondition:
        since = self.since if reason == self.reason else now
        return ResizeCondition(reason, message, generation, since)


@dataclass(frozen=True)
class Termination:
    reason: str
    exit_code: int
    started: float
    finished: float


@dataclass
class ContainerRuntime:
    """One container's simulated life: restarts, and counters the metrics report."""

    name: str
    image: str
    started: float
    restart_count: int = 0
    last_termination: Termination | None = None
    cpu_seconds: float = 0.0
    periods: int = 0
    throttled_periods: int = 0
    oom_events: int = 0
    gpu_batch_failures: int = 0
    working_set_bytes: int = 0
    gpu_memory_bytes: int = 0

    def restart(self, reason: str, exit_code: int, now: float) -> None:
        self.last_termination = Termination(reason, exit_code, self.started, now)
        self.restart_count += 1
        self.started = now


@dataclass
class PodRecord:
    uid: str
    namespace: str
    name: str
    node: str
    body: Body
    allocated: PodResources
    actual: PodResources
    started: float
    containers: dict[str, ContainerRuntime] = field(default_factory=dict)
    pending: ResizeCondition | None = None
    in_progress: ResizeCondition | None = None
    devices: list[AllocatedDevice] = field(default_factory=list)
    device_health: dict[str, str] = field(default_factory=dict)  # resource id -> not Healthy
    running: bool = False

    @property
    def generation(self) -> int:
        return int(self.body["metadata"].get("generation") or 1)

    @property
    def desired(self) -> PodResources:
        return pod_resources(self.body["spec"])

    @property
    def priority(self) -> int:
        return int(self.body["spec"].get("priority") or 0)

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.body["metadata"].get("annotations") or {})

    @property
    def owner(self) -> tuple[str, str] | None:
        owners = self.body["metadata"].get("ownerReferences") or []
        controller = next((o for o in owners if o.get("controller")), None)
        return (controller["kind"], controller["name"]) if controller else None


def new_record(body: Body, now: float) -> PodRecord:
    """A pod just admitted: allocated and actual as its spec asks."""
    resources = pod_resources(body["spec"])
    metadata = body["metadata"]
    record = PodRecord(
        uid=metadata["uid"],
        namespace=metadata["namespace"],
        name=metadata["name"],
        node=body["spec"]["nodeName"],
        body=body,
        allocated=resources,
        actual=resources,
        started=now,
    )
    for container in _all_containers(body["spec"]):
        record.containers[container["name"]] = ContainerRuntime(
            container["name"], container.get("image", ""), now
        )
    return record


def _all_containers(spec: Body) -> list[Body]:
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def pod_status(record: PodRecord, host_ip: str) -> Body:
    """The status a v1.37.2 kubelet writes for a running pod (strategic merge patch)."""
    generation = record.generation
    ready = "True" if record.running else "False"
    conditions = [
        _condition("PodReadyToStartContainers", ready, record.started, generation),
        _condition("Initialized", "True", record.started, generation),
        _condition("Ready", ready, record.started, generation),
        _condition("ContainersReady", ready, record.started, generation),
        *_resize_conditions(record),
    ]
    status: Body = {
        "observedGeneration": generation,
        "phase": "Running" if record.running else "Pending",
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": _pod_ip(record.uid),
        "podIPs": [{"ip": _pod_ip(record.uid)}],
        "startTime": rfc3339(record.started),
        "containerStatuses": [
            _container_status(record, c) for c in record.actual.containers if c.kind == "regular"
        ],
    }
    init = [_container_status(record, c) for c in record.actual.containers if c.kind != "regular"]
    if init:
        status["initContainerStatuses"] = init
    allocated = _pod_level(record.allocated).get("requests")
    if allocated:
        status["allocatedResources"] = allocated
    applied = _pod_level(record.actual if record.running else record.allocated)
    if applied:
        status["resources"] = applied
    return status


def _pod_level(resources: PodResources) -> Body:
    """cpu and memory of the whole pod: the envelope's own text for what it names, the
    containers' aggregate (in millicores and bytes) for the rest."""
    envelope = resources.envelope or Envelope()
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for resource in RESIZABLE:
        stated = envelope.requests.get(resource, envelope.limits.get(resource))
        request = resources.requests(resource)
        if stated is not None or request:
            requests[resource] = stated or _quantity(resource, request)
        limit = resources.limits(resource)
        if limit is not None:
            limits[resource] = envelope.limits.get(resource) or _quantity(resource, limit)
    return Envelope(requests, limits).as_body()


def _quantity(resource: str, value: int) -> str:
    return f"{value}m" if resource == CPU else str(value)


def _condition(kind: str, status: str, since: float, generation: int) -> Body:
    return {
        "type": kind,
        "status": status,
        "lastTransitionTime": rfc3339(since),
        "observedGeneration": generation,
    }


def _resize_conditions(record: PodRecord) -> list[Body]:
    conditions: list[Body] = []
    for kind, condition in (
        (RESIZE_PENDING, record.pending),
        (RESIZE_IN_PROGRESS, record.in_progress),
    ):
        if condition is None:
            conditions.append({"type": kind, "$patch": "delete"})
            continue
        body = _condition(kind, "True", condition.since, condition.observed_generation)
        body["lastProbeTime"] = rfc3339(condition.since)
        if condition.reason:
            body["reason"] = condition.reason
        if condition.message:
            body["message"] = condition.message
        conditions.append(body)
    return conditions


def _pod_ip(uid: str) -> str:
    digest = int(uid.replace("-", "")[:6], 16)
    return f"10.244.{(digest >> 8) % 256}.{digest % 254 + 1}"


def _container_status(record: PodRecord, actual: ContainerResources) -> Body:
    runtime = record.containers[actual.name]
    allocated = record.allocated.container(actual.name) or actual
    completed = actual.kind == "init"
    status: Body = {
        "name": actual.name,
        "image": runtime.image,
        "imageID": f"sim://{runtime.image}",
        "containerID": f"sim://{record.uid}/{actual.name}",
        "ready": record.running and not completed,
        "started": record.running and not completed,
        "restartCount": runtime.restart_count,
        "state": _state(record, runtime, completed),
        "lastState": _last_state(runtime),
        "resources": _reported_resources(actual, allocated),
        "allocatedResources": dict(allocated.requests),
    }
    if record.devices:
        status["allocatedResourcesStatus"] = _device_health(record, actual.name)
    return status


def _state(record: PodRecord, runtime: ContainerRuntime, completed: bool) -> Body:
    if not record.running:
        return {"waiting": {"reason": "ContainerCreating"}}
    if completed:
        return {
            "terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": rfc3339(record.started),
                "finishedAt": rfc3339(record.started),
            }
        }
    return {"running": {"startedAt": rfc3339(runtime.started)}}


def _last_state(runtime: ContainerRuntime) -> Body:
    last = runtime.last_termination
    if last is None:
        return {}
    return {
        "terminated": {
            "exitCode": last.exit_code,
            "reason": last.reason,
            "startedAt": rfc3339(last.started),
            "finishedAt": rfc3339(last.finished),
        }
    }


def _reported_resources(actual: ContainerResources, allocated: ContainerResources) -> Body:
    """cpu and memory as applied; other resources as allocated (the runtime reports only
    cpu and memory)."""
    requests = {k: v for k, v in allocated.requests.items() if k not in RESIZABLE}
    limits = {k: v for k, v in allocated.limits.items() if k not in RESIZABLE}
    requests.update({k: v for k, v in actual.requests.items() if k in RESIZABLE})
    limits.update({k: v for k, v in actual.limits.items() if k in RESIZABLE})
    return ContainerResources(actual.name, requests=requests, limits=limits).as_body()


def _device_health(record: PodRecord, container: str) -> list[Body]:
    """`allocatedResourcesStatus` for the claims the container names: each device Healthy
    unless a fault was injected for it."""
    spec = next(c for c in _all_containers(record.body["spec"]) if c["name"] == container)
    statuses = []
    for claim in (spec.get("resources") or {}).get("claims") or []:
        request = claim.get("request")
        name = f"claim:{claim['name']}/{request}" if request else f"claim:{claim['name']}"
        devices = [
            {
                "resourceID": d.resource_id,
                "health": record.device_health.get(d.resource_id, HEALTHY),
            }
            for d in record.devices
            if d.claim == claim["name"] and (not request or d.request == request)
        ]
        statuses.append({"name": name, "resources": devices})
    return statuses
