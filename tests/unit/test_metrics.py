"""The simulator's exporter series, rendered from container states without a cluster."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from bridgescale.simulator.metrics import ContainerState, GpuState, SimulatorCollector, series

GIB = 1024**3
STATE = ContainerState(
    namespace="bridges",
    pod="bridge-0",
    uid="u-1",
    container="router",
    node="sim-mig-0",
    image="bridge:1",
    owner=("ReplicaSet", "bridge-5d8f"),
    requests={"cpu": 0.5, "memory": 1.0 * GIB},
    limits={"cpu": 1.0, "memory": 2.0 * GIB},
    cpu_seconds=12.5,
    working_set_bytes=GIB,
    periods=100,
    throttled_periods=7,
    oom_events=1,
    restarts=1,
    last_terminated_reason="OOMKilled",
    gpu_batch_failures=0,
    gpus=(GpuState("u", "gpu-0-1g-10gb-0", "1g.10gb", 10 * GIB, 3 * GIB),),
)


def test_series_carry_the_exporters_names_and_labels() -> None:
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in series([STATE])}
    ids = (("container", "router"), ("namespace", "bridges"), ("pod", "bridge-0"))

    def find(name: str, **labels: str) -> float:
        wanted = set(ids) | set(labels.items())
        matches = [v for (n, lab), v in samples.items() if n == name and wanted <= set(lab)]
        assert len(matches) == 1, (name, labels)
        return matches[0]

    assert find("container_cpu_usage_seconds_total", cpu="total") == 12.5
    assert find("container_cpu_cfs_throttled_periods_total") == 7
    assert find("kube_pod_container_resource_requests", resource="cpu", unit="core") == 0.5
    assert find("kube_pod_container_resource_limits", resource="memory", unit="byte") == 2 * GIB
    assert find("kube_pod_container_status_last_terminated_reason", reason="OOMKilled") == 1
    assert find("DCGM_FI_DEV_FB_USED", GPU_I_PROFILE="1g.10gb") == 3072
    assert find("DCGM_FI_DEV_FB_FREE", GPU_I_PROFILE="1g.10gb") == 7168
    owners = [s for s in series([STATE, STATE]) if s.name == "kube_pod_owner"]
    assert len(owners) == 1
    assert owners[0].labels["owner_kind"] == "ReplicaSet"


def test_series_at_a_timestamp_and_the_exposition() -> None:
    assert {s.timestamp for s in series([STATE], timestamp=1_700_000_000.0)} == {1_700_000_000.0}
    registry = CollectorRegistry()
    registry.register(SimulatorCollector(lambda: [STATE]))

    text = generate_latest(registry).decode()

    assert "# TYPE container_oom_events_total counter" in text
    assert 'container_oom_events_total{container="router"' in text
    assert "# TYPE container_memory_working_set_bytes gauge" in text
