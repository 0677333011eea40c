"""History of the simulated fleet, for Prometheus to start with.

For each running container of the given namespaces, the same workload model that drives the
simulator live (`bridgescale.simulator.usage`) is replayed over the past days against the
container's current requests and limits, with the kubelet's effects (cpu throttling, OOM kills
and restarts, failed GPU batches), and rendered by the simulator's own exporters
(`bridgescale.simulator.metrics.series`). The series therefore carry exactly the names and labels
that live scraping will.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from kubernetes import client

from bridgescale.localcluster.prometheus import MetricFamily, SeriesHistory
from bridgescale.simulator import dra, metrics, usage

CFS_PERIOD_SECONDS = 0.1
FloatArray = npt.NDArray[np.float64]
Body = dict[str, Any]


@dataclass(frozen=True)
class ContainerHistory:
    """One container's replayed history: its identity and its counters at each instant."""

    identity: metrics.ContainerState
    cpu_seconds: FloatArray
    working_set_bytes: FloatArray
    periods: FloatArray
    throttled_periods: FloatArray
    oom_events: FloatArray
    gpu_used_bytes: FloatArray
    gpu_batch_failures: FloatArray

    def at(self, index: int) -> metrics.ContainerState:
        state = self.identity
        killed = int(self.oom_events[index])
        gpus = tuple(replace(gpu, used_bytes=int(self.gpu_used_bytes[index])) for gpu in state.gpus)
        return replace(
            state,
            cpu_seconds=float(self.cpu_seconds[index]),
            working_set_bytes=int(self.working_set_bytes[index]),
            periods=int(self.periods[index]),
            throttled_periods=int(self.throttled_periods[index]),
            oom_events=killed,
            restarts=killed,
            last_terminated_reason="OOMKilled" if killed else None,
            gpu_batch_failures=int(self.gpu_batch_failures[index]),
            gpus=gpus,
        )


def replay(
    identity: metrics.ContainerState, annotations: dict[str, str], times: FloatArray
) -> ContainerHistory:
    """What the kubelet would have seen of this container at `times` (evenly spaced)."""
    step = float(times[1] - times[0]) if len(times) > 1 else 60.0
    demand = usage_series(
        annotations, f"{identity.namespace}/{identity.pod}", identity.container, times
    )
    cpu_limit = identity.limits.get("cpu", np.inf)
    throttled = demand["cpu"] > cpu_limit
    periods_per_step = step / CFS_PERIOD_SECONDS if "cpu" in identity.limits else 0.0
    memory_limit = identity.limits.get("memory", np.inf)
    killed = demand["memory"] > memory_limit
    resident = usage.bridge_profile(annotations, identity.container).memory_bytes
    capacity = sum(gpu.capacity_bytes for gpu in identity.gpus)
    failed = (demand["vram"] > capacity) & (capacity > 0)
    return ContainerHistory(
        identity=identity,
        cpu_seconds=np.cumsum(np.minimum(demand["cpu"], cpu_limit) * step),
        working_set_bytes=np.where(
            killed, np.minimum(demand["memory"], resident), demand["memory"]
        ),
        periods=np.cumsum(np.full(len(times), periods_per_step)),
        throttled_periods=np.cumsum(throttled * periods_per_step),
        oom_events=np.cumsum(killed),
        gpu_used_bytes=np.minimum(demand["vram"], capacity) if capacity else np.zeros(len(times)),
        gpu_batch_failures=np.cumsum(failed),
    )


def usage_series(
    annotations: dict[str, str], pod: str, container: str, times: FloatArray
) -> dict[str, FloatArray]:
    """Demand at many instants, for any profile `usage.container_usage` knows."""
    if annotations.get(usage.PROFILE) == usage.BRIDGE:
        return usage.bridge_usage(annotations, pod, container, times)
    now = float(times[0]) if len(times) else 0.0
    constant = usage.container_usage(annotations, pod, container, 0.0, now)
    ones = np.ones(len(times))
    return {
        "cpu": ones * constant.cpu_cores,
        "memory": ones * constant.memory_bytes,
        "vram": ones * constant.gpu_memory_bytes,
    }


def running_containers(
    api: client.ApiClient, namespaces: Sequence[str]
) -> Iterator[tuple[metrics.ContainerState, dict[str, str]]]:
    """Identity of each running container of the namespaces, with its pod's annotations."""
    core = client.CoreV1Api(api)
    for namespace in namespaces:
        for pod in core.list_namespaced_pod(namespace).to_dict()["items"]:
            if (pod.get("status") or {}).get("phase") != "Running":
                continue
            devices = _devices(api, pod)
            annotations = pod["metadata"].get("annotations") or {}
            for container in pod["spec"]["containers"]:
                yield container_identity(pod, container, devices), annotations


def container_identity(
    pod: Body, container: Body, devices: list[dra.AllocatedDevice]
) -> metrics.ContainerState:
    """A container of a pod (as the client's `to_dict()` gives it) as the exporters label it;
    a pod not bound to a node has an empty `node`."""
    metadata = pod["metadata"]
    owner = next((o for o in metadata.get("owner_references") or [] if o.get("controller")), None)
    resources = container.get("resources") or {}
    claims = {c["name"] for c in resources.get("claims") or []}
    gpus = tuple(
        metrics.GpuState(f"{d.pool}/{d.device}", d.device, d.profile, d.memory_bytes, 0)
        for d in devices
        if d.claim in claims
    )
    return metrics.ContainerState(
        namespace=metadata["namespace"],
        pod=metadata["name"],
        uid=metadata["uid"],
        container=container["name"],
        node=pod["spec"].get("node_name") or "",
        image=container["image"],
        owner=(owner["kind"], owner["name"]) if owner else None,
        requests=metrics.kube_state_amounts(resources.get("requests") or {}),
        limits=metrics.kube_state_amounts(resources.get("limits") or {}),
        cpu_seconds=0.0,
        working_set_bytes=0,
        periods=0,
        throttled_periods=0,
        oom_events=0,
        restarts=0,
        last_terminated_reason=None,
        gpu_batch_failures=0,
        gpus=gpus,
    )


def _devices(api: client.ApiClient, pod: Body) -> list[dra.AllocatedDevice]:
    resource = client.ResourceV1Api(api)
    devices: list[dra.AllocatedDevice] = []
    for status in (pod.get("status") or {}).get("resource_claim_statuses") or []:
        if not status.get("resource_claim_name"):
            continue
        claim = resource.read_namespaced_resource_claim(
            status["resource_claim_name"], pod["metadata"]["namespace"]
        )
        body: Body = api.sanitize_for_serialization(claim)  # type: ignore[no-untyped-call]
        devices += dra.allocated_devices(status["name"], body)
    return devices


def history_families(
    histories: Iterable[ContainerHistory], times: FloatArray, target: Mapping[str, str]
) -> list[MetricFamily]:
    """The exporters' series of every container at every instant, grouped by family, with the
    `target` labels (job, instance) that Prometheus adds to what it scrapes."""
    histories = list(histories)
    points: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]] = {}
    for index, timestamp in enumerate(times):
        states = [history.at(index) for history in histories]
        for sample in metrics.series(states):
            key = (sample.name, tuple(sorted({**sample.labels, **target}.items())))
            points.setdefault(key, []).append((float(timestamp), float(sample.value)))
    families: dict[str, MetricFamily] = {}
    for (name, labels), values in points.items():
        kind, documentation = metrics.FAMILIES[name]
        family_name = name.removesuffix("_total") if kind == "counter" else name
        family = families.setdefault(name, MetricFamily(family_name, kind, documentation))
        family.series.append(SeriesHistory(family_name, dict(labels), values))
    return list(families.values())


# Two minutes apart, `rate(...[5m])` still sees two or three samples of history, and promtool
# (which writes two-hour blocks, one by one) takes half as long as at one minute.
HISTORY_STEP_SECONDS = 120.0


def fleet_history(
    api: client.ApiClient,
    namespaces: Sequence[str],
    start: float,
    end: float,
    *,
    target: Mapping[str, str],
    step: float = HISTORY_STEP_SECONDS,
) -> list[MetricFamily]:
    """Every exporter series of the running containers of `namespaces` over [start, end), as
    Prometheus would have scraped them from `target` (its job and instance labels)."""
    times = np.arange(start, end, step, dtype=np.float64)
    histories = [
        replay(identity, annotations, times)
        for identity, annotations in running_containers(api, namespaces)
    ]
    return history_families(histories, times, target)
