"""Usage of the simulated containers and its effects: OOM kills, cpu throttling, GPU batches
beyond the claim, all visible on the simulator's /metrics with the exporters' names."""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping

from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster.conftest import SIMULATOR_METRICS_PORT
from tests.cluster.simulation import Container, guaranteed, pod_manifest, run_pod
from tests.cluster.test_dra import gpu_pod, mig
from tests.cluster.waiting import eventually

PROFILE = "sim.bridgescale.dev/profile"


def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    url = f"http://127.0.0.1:{SIMULATOR_METRICS_PORT}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(name: str, **labels: str) -> float | None:
    """The one sample of `name` whose labels include `labels`."""
    found = [
        v
        for (sample, sample_labels), v in scrape().items()
        if sample == name and set(labels.items()) <= sample_labels
    ]
    return found[0] if len(found) == 1 else None


def constant(**usage: str) -> Mapping[str, str]:
    return {PROFILE: "constant", **{f"sim.bridgescale.dev/{k}": v for k, v in usage.items()}}


def test_working_set_past_the_limit_is_oom_killed(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    core = client.CoreV1Api(api)
    annotations = constant(memory="300Mi")
    manifest = pod_manifest(
        "leaky", [guaranteed(memory="200Mi")], node="sim-0", annotations=annotations
    )
    pod = run_pod(api, namespace, manifest)

    def oom_killed() -> client.V1ContainerStatus | None:
        status = core.read_namespaced_pod("leaky", namespace).status.container_statuses[0]
        terminated = status.last_state.terminated
        return status if terminated and terminated.reason == "OOMKilled" else None

    status = eventually(oom_killed, timeout=10, what="an OOM kill")
    assert status.restart_count >= 1
    assert status.last_state.terminated.exit_code == 137
    ids = {"namespace": namespace, "pod": "leaky", "container": "c1"}
    assert (value("container_oom_events_total", **ids) or 0) >= 1
    reason = value("kube_pod_container_status_last_terminated_reason", reason="OOMKilled", **ids)
    assert reason == 1
    assert (value("kube_pod_container_status_restarts_total", **ids) or 0) >= 1
    assert value("kube_pod_owner", namespace=namespace, pod="leaky", uid=pod.metadata.uid) == 1


def test_cpu_above_the_limit_is_throttled(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    annotations = constant(cpu="500m", memory="50Mi")
    manifest = pod_manifest("busy", [guaranteed(cpu="200m")], node="sim-0", annotations=annotations)
    run_pod(api, namespace, manifest)
    ids = {"namespace": namespace, "pod": "busy", "container": "c1"}

    throttled = eventually(
        lambda: value("container_cpu_cfs_throttled_periods_total", **ids),
        timeout=10,
        what="throttled periods",
    )
    periods = value("container_cpu_cfs_periods_total", **ids) or 0
    used = value("container_cpu_usage_seconds_total", **ids) or 0
    assert 0 < throttled <= periods
    assert used <= 0.2 * periods * 0.1 + 1e-6  # never more than the limit per period
    assert value("container_memory_working_set_bytes", **ids) == 50 * 1024 * 1024
    requests = value("kube_pod_container_resource_requests", resource="cpu", unit="core", **ids)
    assert requests == 0.2
    limits = value("kube_pod_container_resource_limits", resource="memory", unit="byte", **ids)
    assert limits == 200 * 1024 * 1024


def test_gpu_memory_beyond_the_claim_fails_batches(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    client.ResourceV1Api(api).create_namespaced_resource_claim_template(
        namespace,
        {
            "metadata": {"name": "mig-1g"},
            "spec": {
                "spec": {"devices": {"requests": [{"name": "gpu", "exactly": mig("1g.10gb")}]}}
            },
        },
    )
    run_pod(api, namespace, gpu_pod("batches", "mig-1g", **constant(**{"gpu-memory": "12Gi"})))
    ids = {"namespace": namespace, "pod": "batches", "container": "c1"}

    failures = eventually(
        lambda: value("bridgescale_sim_gpu_batch_failures_total", **ids),
        timeout=10,
        what="failed batches",
    )
    assert failures >= 1
    assert value("DCGM_FI_DEV_FB_USED", GPU_I_PROFILE="1g.10gb", **ids) == 10240
    assert value("DCGM_FI_DEV_FB_FREE", GPU_I_PROFILE="1g.10gb", **ids) == 0


def test_idle_container_has_no_quota_and_no_gpu(
    api: client.ApiClient, simulator: list[str], namespace: str
) -> None:
    manifest = pod_manifest("idle", [Container("c1")], node="sim-0")
    run_pod(api, namespace, manifest)
    ids = {"namespace": namespace, "pod": "idle", "container": "c1"}

    assert eventually(lambda: value("container_memory_working_set_bytes", **ids), timeout=10) > 0
    assert value("container_cpu_cfs_periods_total", **ids) is None  # no cpu limit, no quota
    assert value("DCGM_FI_DEV_FB_USED", **ids) is None
