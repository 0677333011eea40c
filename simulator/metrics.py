"""The simulator's `/metrics`: cAdvisor, kube-state-metrics and DCGM exporter series with the real
exporters' names and labels, rendered from the simulated containers.

`series(states)` is a pure function of container states, so the same series can be rendered
for any instant (the live endpoint, or history backfilled as OpenMetrics).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bridgescale.simulator.resources import CPU, quantity_value

MIB = 1024 * 1024
MetricType = Literal["counter", "gauge"]

FAMILIES: Mapping[str, tuple[MetricType, str]] = {
    "container_cpu_usage_seconds_total": ("counter", "Cumulative cpu time consumed in seconds."),
    "container_memory_working_set_bytes": ("gauge", "Current working set in bytes."),
    "container_cpu_cfs_periods_total": ("counter", "Number of elapsed enforcement periods."),
    "container_cpu_cfs_throttled_periods_total": ("counter", "Number of throttled periods."),
    "container_oom_events_total": ("counter", "Count of out of memory events observed."),
    "kube_pod_container_resource_requests": ("gauge", "The number of requested resource."),
    "kube_pod_container_resource_limits": ("gauge", "The number of limited resource."),
    "kube_pod_container_status_last_terminated_reason": (
        "gauge",
        "Describes the last reason the container was in terminated state.",
    ),
    "kube_pod_container_status_restarts_total": (
        "counter",
        "The number of container restarts per container.",
    ),
    "kube_pod_owner": ("gauge", "Information about the Pod's owner."),
    "DCGM_FI_DEV_FB_USED": ("gauge", "Framebuffer memory used (in MiB)."),
    "DCGM_FI_DEV_FB_FREE": ("gauge", "Framebuffer memory free (in MiB)."),
    "bridgescale_sim_gpu_batch_failures_total": (
        "counter",
        "Point-cloud batches that failed for GPU memory beyond the claim's capacity.",
    ),
}
UNITS = {"cpu": "core", "memory": "byte"}


@dataclass(frozen=True)
class GpuState:
    uuid: str
    device: str
    profile: str | None
    capacity_bytes: int
    used_bytes: int


@dataclass(frozen=True)
class ContainerState:
    """One container as the exporters see it; cpu in cores, memory in bytes."""

    namespace: str
    pod: str
    uid: str
    container: str
    node: str
    image: str
    owner: tuple[str, str] | None
    requests: Mapping[str, float]
    limits: Mapping[str, float]
    cpu_seconds: float
    working_set_bytes: int
    periods: int
    throttled_periods: int
    oom_events: int
    restarts: int
    last_terminated_reason: str | None
    gpu_batch_failures: int
    gpus: tuple[GpuState, ...] = ()


def kube_state_amounts(quantities: Mapping[str, str]) -> dict[str, float]:
    """Requests or limits as kube-state-metrics reports them: cpu in cores, the rest in units."""
    return {
        name: quantity_value(name, text) / (1000 if name == CPU else 1)
        for name, text in quantities.items()
    }


class Sample(NamedTuple):
    name: str
    labels: Mapping[str, str]
    value: float
    timestamp: float | None = None  # Unix seconds; None: the scrape's time


def series(states: Iterable[ContainerState], timestamp: float | None = None) -> list[Sample]:
    """Every series of the three exporters for these containers, family by family; stamped
    with `timestamp` if given (history rendered as OpenMetrics for backfilling)."""
    samples: list[Sample] = []
    owners: dict[str, ContainerState] = {}
    for state in states:
        samples.extend(_cadvisor(state))
        samples.extend(_kube_state(state))
        samples.extend(_dcgm(state))
        owners.setdefault(state.uid, state)
    samples.extend(_owner(state) for state in owners.values())
    order = {name: index for index, name in enumerate(FAMILIES)}
    samples.sort(key=lambda sample: order[sample.name])
    if timestamp is None:
        return samples
    return [sample._replace(timestamp=timestamp) for sample in samples]


def _cadvisor(state: ContainerState) -> Iterator[Sample]:
    labels = {
        "namespace": state.namespace,
        "pod": state.pod,
        "container": state.container,
        "image": state.image,
        "id": f"/kubepods/pod{state.uid}/{state.container}",
        "name": f"{state.pod}_{state.container}",
    }
    yield Sample("container_cpu_usage_seconds_total", {**labels, "cpu": "total"}, state.cpu_seconds)
    yield Sample("container_memory_working_set_bytes", labels, state.working_set_bytes)
    if state.periods:
        yield Sample("container_cpu_cfs_periods_total", labels, state.periods)
        yield Sample("container_cpu_cfs_throttled_periods_total", labels, state.throttled_periods)
    yield Sample("container_oom_events_total", labels, state.oom_events)


def _kube_state(state: ContainerState) -> Iterator[Sample]:
    labels = {
        "namespace": state.namespace,
        "pod": state.pod,
        "uid": state.uid,
        "container": state.container,
    }
    for name, values in (
        ("kube_pod_container_resource_requests", state.requests),
        ("kube_pod_container_resource_limits", state.limits),
    ):
        for resource, value in values.items():
            unit = UNITS.get(resource, "integer")
            yield Sample(
                name, {**labels, "node": state.node, "resource": resource, "unit": unit}, value
            )
    if state.last_terminated_reason:
        reason = {**labels, "reason": state.last_terminated_reason}
        yield Sample("kube_pod_container_status_last_terminated_reason", reason, 1)
    yield Sample("kube_pod_container_status_restarts_total", labels, state.restarts)
    if state.gpus:
        batch = {"namespace": state.namespace, "pod": state.pod, "container": state.container}
        yield Sample("bridgescale_sim_gpu_batch_failures_total", batch, state.gpu_batch_failures)


def _owner(state: ContainerState) -> Sample:
    kind, name = state.owner or ("<none>", "<none>")
    labels = {
        "namespace": state.namespace,
        "pod": state.pod,
        "uid": state.uid,
        "owner_kind": kind,
        "owner_name": name,
        "owner_is_controller": "true" if state.owner else "<none>",
    }
    return Sample("kube_pod_owner", labels, 1)


def _dcgm(state: ContainerState) -> Iterator[Sample]:
    for index, gpu in enumerate(state.gpus):
        labels = {
            "gpu": str(index),
            "UUID": gpu.uuid,
            "device": gpu.device,
            "modelName": "Simulated GPU 80GB",
            "Hostname": state.node,
            "namespace": state.namespace,
            "pod": state.pod,
            "container": state.container,
        }
        if gpu.profile:
            labels["GPU_I_PROFILE"] = gpu.profile
        yield Sample("DCGM_FI_DEV_FB_USED", labels, gpu.used_bytes // MIB)
        yield Sample("DCGM_FI_DEV_FB_FREE", labels, (gpu.capacity_bytes - gpu.used_bytes) // MIB)


def families(samples: Iterable[Sample]) -> list[Metric]:
    """Prometheus metric families of the samples, for a collector."""
    built: dict[str, Metric] = {}
    for sample in samples:
        family = built.get(sample.name)
        if family is None:
            family = _family(sample.name)
            built[sample.name] = family
        family.add_sample(sample.name, dict(sample.labels), sample.value, sample.timestamp)
    return list(built.values())


def _family(name: str) -> Metric:
    kind, documentation = FAMILIES[name]
    if kind == "counter":
        return CounterMetricFamily(name.removesuffix("_total"), documentation)
    return GaugeMetricFamily(name, documentation)


class SimulatorCollector(Collector):
    """Collects the series of whatever container states `read` returns at scrape time."""

    def __init__(self, read: Callable[[], list[ContainerState]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        yield from families(series(self._read()))
