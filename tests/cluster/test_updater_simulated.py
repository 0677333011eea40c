"""The updater end to end with the node simulator doing the kubelet's part: a rising
recommendation resized in place, and memory downscaled in steps that never go below usage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry

from bridgescale import kube
from bridgescale.kube.updater_cluster import KubeCluster
from bridgescale.localcluster.environment import LocalEnvironment
from bridgescale.quantity import MiB, parse
from bridgescale.updater.metrics import UpdaterMetrics
from bridgescale.updater.reconcile import Action, Reconciler
from bridgescale.updater.settings import UpdaterSettings
from bridgescale.updater.usage import ScrapedUsage
from tests.cluster.conftest import SIMULATOR_METRICS_PORT
from tests.cluster.simulation import (
    Expected,
    condition,
    guaranteed,
    pod_manifest,
    run_pod,
    wait_resized,
)
from tests.cluster.updater_support import (
    UPDATER_ACCOUNT,
    UPDATER_NAMESPACE,
    apply_updater_rbac,
    opt_in,
    recommend,
)
from tests.cluster.waiting import eventually

pytestmark = pytest.mark.cluster
USAGE = {"sim.bridgescale.dev/profile": "constant", "sim.bridgescale.dev/memory": "300Mi"}


@pytest.fixture(scope="module")
def as_updater(
    local_cluster: LocalEnvironment, api: client.ApiClient, crds: list[str]
) -> Iterator[client.ApiClient]:
    apply_updater_rbac(api)
    kubeconfig: Path = local_cluster.mint_kubeconfig(UPDATER_NAMESPACE, UPDATER_ACCOUNT)
    with kube.new_client(kubeconfig) as api_client:
        yield api_client


@pytest.fixture
def bridges(api: client.ApiClient, namespace: str, simulator: list[str]) -> Iterator[str]:
    opt_in(api, namespace)
    yield namespace
    client.CoreV1Api(api).patch_namespace(
        namespace, {"metadata": {"labels": {"bridgescale.dev/enabled": None}}}
    )


def _mine(actions: list[Action], namespace: str) -> list[tuple[str, str]]:
    return [(a.decision, a.result) for a in actions if a.pod.startswith(namespace + "/")]


def test_a_rising_recommendation_is_resized_in_place(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str
) -> None:
    before = run_pod(
        api, bridges, pod_manifest("bridge-0", [guaranteed("router", "500m", "256Mi")])
    )
    recommend(api, bridges, "Pod", "bridge-0", {"cpu": "1", "memory": "512Mi"})
    reconciler = Reconciler(
        KubeCluster(as_updater), UpdaterSettings(), UpdaterMetrics(CollectorRegistry())
    )

    assert _mine(reconciler.run_pass(), bridges) == [("Resize", "Accepted")]

    after = wait_resized(api, bridges, "bridge-0", [Expected(guaranteed("router", "1", "512Mi"))])
    assert after.metadata.uid == before.metadata.uid
    assert after.status.container_statuses[0].restart_count == 0
    assert after.status.container_statuses[0].resources.requests == {"cpu": "1", "memory": "512Mi"}
    assert reconciler.settle(dt.timedelta(seconds=30))
    registry = reconciler.metrics.registry
    assert (
        registry.get_sample_value("bridgescale_updater_resizes_total", {"result": "Settled"}) == 1
    )


def _memory_limit(api: client.ApiClient, namespace: str) -> float:
    pod = client.CoreV1Api(api).read_namespaced_pod("bridge-0", namespace)
    return parse(pod.spec.containers[0].resources.limits["memory"], "memory")


def test_memory_downscale_never_sets_a_limit_below_usage(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str
) -> None:
    manifest = pod_manifest("bridge-0", [guaranteed("router", "500m", "1Gi")], annotations=USAGE)
    run_pod(api, bridges, manifest)
    recommend(api, bridges, "Pod", "bridge-0", {"cpu": "500m", "memory": "128Mi"})
    usage = ScrapedUsage(f"http://127.0.0.1:{SIMULATOR_METRICS_PORT}/metrics")
    settings = UpdaterSettings(cool_down=dt.timedelta(0))
    reconciler = Reconciler(
        KubeCluster(as_updater), settings, UpdaterMetrics(CollectorRegistry()), usage=usage
    )

    def scraped() -> object:
        usage.refresh()
        return usage.usage(bridges, "bridge-0")

    eventually(scraped, what="the simulator's metrics of the pod")

    limits = [_memory_limit(api, bridges)]
    for _ in range(8):
        if _mine(reconciler.run_pass(), bridges) != [("Resize", "Accepted")]:
            break
        assert reconciler.settle(dt.timedelta(seconds=30))
        limits.append(_memory_limit(api, bridges))

    print("memory limits, MiB:", [int(limit // MiB) for limit in limits])
    floor = 300 * MiB + settings.memory_headroom_bytes
    assert len(limits) > 2  # stepped down more than once
    assert all(limit >= floor for limit in limits)
    assert limits[-1] == floor  # as low as is safe, and no lower
    assert all(b >= a * (1 - settings.memory_max_step_down) for a, b in pairwise(limits))
    pod = client.CoreV1Api(api).read_namespaced_pod("bridge-0", bridges)
    assert condition(pod, "PodResizeInProgress") is None
    assert pod.status.container_statuses[0].restart_count == 0
