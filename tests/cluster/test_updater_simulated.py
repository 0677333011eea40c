"""The updater end to end with the node simulator doing the kubelet's part: a rising
recommendation resized in place (to the limit of a Burstable bridge), and memory downscaled in
steps that never go below usage."""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry

from bridgescale.commands.updater import peak_window
from bridgescale.kube import admission, updater_events
from bridgescale.kube.updater_cluster import KubeCluster
from bridgescale.localcluster.processes import ProcessSupervisor
from bridgescale.localcluster.prometheus import MetricFamily, PrometheusServer, SeriesHistory
from bridgescale.quantity import MiB, parse, round_up
from bridgescale.updater.metrics import UpdaterMetrics
from bridgescale.updater.reconcile import Action, Reconciler
from bridgescale.updater.settings import UpdaterSettings
from bridgescale.updater.usage import ScrapedUsage
from bridgescale.updater.webhook import WebhookServer
from tests.cluster.conftest import SIMULATOR_METRICS_PORT, TEST_PORT_BASE
from tests.cluster.simulation import (
    Container,
    Expected,
    condition,
    guaranteed,
    is_running,
    pod_manifest,
    run_pod,
    wait_resized,
)
from tests.cluster.test_dra import (
    ECC_TAINT,
    allocation,
    claim_template,
    gpu_pod,
    mig,
    taint_rule,
)
from tests.cluster.test_resize_pod_level import wait_envelope
from tests.cluster.updater_support import (
    deployment_of,
    recommend,
)
from tests.cluster.waiting import eventually

pytestmark = pytest.mark.cluster
PLAIN_NODES = ("sim-0", "sim-1", "sim-2", "sim-3")
HISTORY_PORT = TEST_PORT_BASE + 22
USAGE = {"sim.bridgescale.dev/profile": "constant", "sim.bridgescale.dev/memory": "300Mi"}


@pytest.fixture
def bridges(bridges: str, simulator: list[str]) -> str:
    """The opted-in namespace of conftest, with the node simulator running its pods."""
    return bridges


def _mine(actions: list[Action], namespace: str) -> list[tuple[str, str]]:
    return [(a.decision, a.result) for a in actions if a.pod.startswith(namespace + "/")]


def _free_cpu(api: client.ApiClient, node: str) -> float:
    allocatable = client.CoreV1Api(api).read_node(node).status.allocatable["cpu"]
    pods = (
        client.CoreV1Api(api)
        .list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}")
        .items
    )
    used = 0.0
    for pod in pods:
        if str(pod.status.phase) not in {"Succeeded", "Failed"}:
            for c in pod.spec.containers:
                used += parse((c.resources.requests or {}).get("cpu", "0"), "cpu")
    return parse(allocatable, "cpu") - used


def _roomy_nodes(api: client.ApiClient, cpu: float, count: int = 1) -> list[str]:
    """Plain simulated nodes with `cpu` free, most free first; waits for `count` of them (pods
    of earlier tests may still be terminating)."""

    def roomy() -> list[str]:
        free = {node: _free_cpu(api, node) for node in PLAIN_NODES}
        found = sorted((n for n in free if free[n] >= cpu), key=lambda n: -free[n])
        return found if len(found) >= count else []

    return eventually(roomy, timeout=90, what=f"{count} node(s) with {cpu} cpu free")


def test_a_rising_recommendation_is_resized_in_place(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str
) -> None:
    node = _roomy_nodes(api, cpu=1.0)[0]
    manifest = pod_manifest("bridge-0", [guaranteed("router", "500m", "256Mi")], node)
    before = run_pod(api, bridges, manifest)
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


def test_a_burstable_bridge_gets_the_target_as_its_limit(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str
) -> None:
    node = _roomy_nodes(api, cpu=1.0)[0]
    router = Container("router", "250m", "500m", "256Mi", "512Mi")
    before = run_pod(api, bridges, pod_manifest("bridge-0", [router], node))
    recommend(api, bridges, "Pod", "bridge-0", {"cpu": "1", "memory": "768Mi"})
    reconciler = Reconciler(
        KubeCluster(as_updater), UpdaterSettings(), UpdaterMetrics(CollectorRegistry())
    )

    assert _mine(reconciler.run_pass(), bridges) == [("Resize", "Accepted")]

    resized = Container("router", "500m", "1", "384Mi", "768Mi")  # requests at half the limit
    after = wait_resized(api, bridges, "bridge-0", [Expected(resized)])
    assert after.metadata.uid == before.metadata.uid
    assert after.status.qos_class == "Burstable"
    applied = after.status.container_statuses[0].resources
    assert applied.limits == {"cpu": "1", "memory": "768Mi"}  # the forecast peak
    assert applied.requests == {"cpu": "500m", "memory": "384Mi"}
    assert reconciler.settle(dt.timedelta(seconds=30))
    assert _mine(reconciler.run_pass(), bridges)[0][0] == "Skip"


def test_a_two_container_bridge_gets_its_envelope_resized_in_place(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str
) -> None:
    """The issue's must-show: pod-level resources resized in place through pods/resize, the
    new envelope in status.resources, no container restarted, the same pod."""
    node = _roomy_nodes(api, cpu=2.0)[0]
    sidecar_and_router = [Container("router", "200m", None, "256Mi"), Container("telemetry")]
    envelope = {"cpu": "1", "memory": "1Gi"}
    manifest = pod_manifest(
        "bridge-0", sidecar_and_router, node, resources={"requests": envelope, "limits": envelope}
    )
    before = run_pod(api, bridges, manifest)
    recommend(api, bridges, "Pod", "bridge-0", {}, pod_target={"cpu": "1500m", "memory": "1536Mi"})
    reconciler = Reconciler(
        KubeCluster(as_updater), UpdaterSettings(), UpdaterMetrics(CollectorRegistry())
    )

    assert _mine(reconciler.run_pass(), bridges) == [("Resize", "Accepted")]

    wanted = {"cpu": "1500m", "memory": "1536Mi"}
    after = wait_envelope(api, bridges, "bridge-0", {"requests": wanted, "limits": wanted})
    assert after.metadata.uid == before.metadata.uid
    assert after.status.qos_class == "Guaranteed"
    assert [s.restart_count for s in after.status.container_statuses] == [0, 0]
    router, telemetry = after.spec.containers
    assert router.resources.requests == {"cpu": "200m", "memory": "256Mi"}
    assert not telemetry.resources.requests and not telemetry.resources.limits
    assert reconciler.settle(dt.timedelta(seconds=30))
    assert _mine(reconciler.run_pass(), bridges)[0][0] == "Skip"


def test_a_resize_beyond_its_node_is_taken_as_infeasible(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str
) -> None:
    # Every test node has 4 cpu: the API server refuses 6 (PodResizeValidator, NodeCapacity),
    # and no node could hold a replacement either.
    node = _roomy_nodes(api, cpu=1.0)[0]
    manifest = pod_manifest("bridge-0", [guaranteed("router", "500m", "256Mi")], node)
    before = run_pod(api, bridges, manifest)
    recommend(api, bridges, "Pod", "bridge-0", {"cpu": "6", "memory": "256Mi"})
    reconciler = Reconciler(
        KubeCluster(as_updater), UpdaterSettings(), UpdaterMetrics(CollectorRegistry())
    )

    assert _mine(reconciler.run_pass(), bridges) == [("Recreate", "NoRoom")]

    pod = client.CoreV1Api(api).read_namespaced_pod("bridge-0", bridges)
    assert pod.metadata.uid == before.metadata.uid
    assert pod.spec.containers[0].resources.requests["cpu"] == "500m"
    notes = [e["note"] for e in updater_events.list_events(api, bridges, "bridge-0")
             if e["reason"] == "RecreateDeferred"]  # fmt: skip
    print(f"events: {notes}")
    assert any("recreate (Infeasible)" in n and "no node has room for cpu 6" in n for n in notes)


def _wait_for_working_set(namespace: str, at_least: float) -> ScrapedUsage:
    usage = ScrapedUsage(f"http://127.0.0.1:{SIMULATOR_METRICS_PORT}/metrics")

    def reached() -> bool:
        usage.refresh()
        seen = usage.usage(namespace, "bridge-0").get("router")
        return seen is not None and (seen.working_set or 0.0) >= at_least

    eventually(reached, what="the simulated working set")
    return usage


def _bridge_using_300mi(
    api: client.ApiClient, namespace: str, recommended_memory: str
) -> ScrapedUsage:
    """A Guaranteed bridge of 1Gi whose working set is 300Mi, once its metrics show it."""
    manifest = pod_manifest("bridge-0", [guaranteed("router", "500m", "1Gi")], annotations=USAGE)
    run_pod(api, namespace, manifest)
    target = {"cpu": "500m", "memory": recommended_memory}
    recommend(api, namespace, "Pod", "bridge-0", target)
    return _wait_for_working_set(namespace, 300 * MiB)


def _memory_limit(api: client.ApiClient, namespace: str) -> float:
    pod = client.CoreV1Api(api).read_namespaced_pod("bridge-0", namespace)
    return parse(pod.spec.containers[0].resources.limits["memory"], "memory")


def test_memory_downscale_never_sets_a_limit_below_usage(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str
) -> None:
    usage = _bridge_using_300mi(api, bridges, recommended_memory="128Mi")
    settings = UpdaterSettings(cool_down=dt.timedelta(0))
    reconciler = Reconciler(
        KubeCluster(as_updater), settings, UpdaterMetrics(CollectorRegistry()), usage=usage
    )

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


def _hourly_forecast(api: client.ApiClient, namespace: str, name: str, cpu: list[float]) -> None:
    start = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    forecast = {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "stepSeconds": 3600, "cpu": cpu}
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        "bridgescale.dev", "v1alpha1", namespace, "resourcerecommendations", name,
        {"status": {"loadForecast": forecast}},
    )  # fmt: skip


def test_no_memory_downscale_into_a_forecast_burst(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str
) -> None:
    usage = _bridge_using_300mi(api, bridges, recommended_memory="128Mi")
    _hourly_forecast(api, bridges, "pod-bridge-0", [0.5, 0.5, 2.0, 0.5])
    settings = UpdaterSettings(cool_down=dt.timedelta(0))
    reconciler = Reconciler(
        KubeCluster(as_updater), settings, UpdaterMetrics(CollectorRegistry()), usage=usage
    )

    assert ("Resize", "Accepted") not in _mine(reconciler.run_pass(), bridges)
    assert _memory_limit(api, bridges) == 1024 * MiB

    _hourly_forecast(api, bridges, "pod-bridge-0", [0.5, 0.5, 0.6, 0.5])  # the burst is gone
    assert _mine(reconciler.run_pass(), bridges) == [("Resize", "Accepted")]
    assert reconciler.settle(dt.timedelta(seconds=30))
    assert _memory_limit(api, bridges) == 768 * MiB


@pytest.fixture
def peak_history(
    bridges: str, tmp_path: Path
) -> Iterator[tuple[PrometheusServer, ProcessSupervisor]]:
    """A Prometheus whose history has the bridge at 600Mi two hours ago, 300Mi otherwise."""
    supervisor = ProcessSupervisor(tmp_path)
    server = PrometheusServer(tmp_path, supervisor, HISTORY_PORT)
    now = time.time() // 60 * 60 - 120
    points = [
        (t, 600.0 * MiB if now - 7200 <= t < now - 6900 else 300.0 * MiB)
        for t in (now - 3 * 3600 + 60 * i for i in range(3 * 60))
    ]
    labels = {"namespace": bridges, "pod": "bridge-0", "container": "router"}
    working_set = SeriesHistory("container_memory_working_set_bytes", labels, points)
    server.backfill([MetricFamily(working_set.name, "gauge", "working set", [working_set])])
    yield server, supervisor
    supervisor.stop_all(timeout=10)


def test_memory_downscale_respects_the_peak_in_the_usage_history(
    api: client.ApiClient,
    as_updater: client.ApiClient,
    bridges: str,
    peak_history: tuple[PrometheusServer, ProcessSupervisor],
) -> None:
    """A restarted updater has scraped only 300Mi, but the history holds a 600Mi peak: the
    limit stops at 600Mi x margin. While the history does not answer, memory waits."""
    server, supervisor = peak_history
    settings = UpdaterSettings(cool_down=dt.timedelta(0))
    scraped = _bridge_using_300mi(api, bridges, recommended_memory="128Mi")
    usage = ScrapedUsage(scraped.url, peak_window=peak_window(server.url, settings))
    reconciler = Reconciler(
        KubeCluster(as_updater), settings, UpdaterMetrics(CollectorRegistry()), usage=usage
    )

    held = _mine(reconciler.run_pass(), bridges)  # the history does not answer yet
    assert ("Resize", "Accepted") not in held
    assert _memory_limit(api, bridges) == 1024 * MiB

    server.start()
    limits = [_memory_limit(api, bridges)]
    for _ in range(6):
        if _mine(reconciler.run_pass(), bridges) != [("Resize", "Accepted")]:
            break
        assert reconciler.settle(dt.timedelta(seconds=30))
        limits.append(_memory_limit(api, bridges))
    print("memory limits, MiB:", [int(limit // MiB) for limit in limits])
    assert limits[-1] == round_up(600 * MiB * settings.memory_peak_margin, "memory")
    supervisor.stop_all(timeout=10)


@pytest.fixture
def webhook(api: client.ApiClient, as_updater: client.ApiClient) -> Iterator[WebhookServer]:
    """The updater's admission webhook, served on loopback and registered, as `updater` does."""
    server = WebhookServer(KubeCluster(as_updater))
    server.start()
    url = f"https://127.0.0.1:{server.port}/mutate"
    admission.register_webhook(as_updater, url, server.ca_bundle)
    yield server
    client.AdmissionregistrationV1Api(api).delete_mutating_webhook_configuration(admission.NAME)
    server.stop()


def _running_pods(api: client.ApiClient, namespace: str) -> list[client.V1Pod]:
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace).items
    return [p for p in pods if p.metadata.deletion_timestamp is None and is_running(p)]


def _replacement(api: client.ApiClient, namespace: str, old: client.V1Pod) -> client.V1Pod:
    found = eventually(
        lambda: [p for p in _running_pods(api, namespace) if p.metadata.uid != old.metadata.uid],
        timeout=90,
        what="the replacement pod running",
    )
    return found[0]


def _pointcloud(
    api: client.ApiClient, namespace: str, template: str, request: dict[str, Any],
    annotations: dict[str, str] | None = None,
) -> client.V1Pod:  # fmt: skip
    """A one-replica GPU bridge on a claim made from a new template; its running pod."""
    client.ResourceV1Api(api).create_namespaced_resource_claim_template(
        namespace, claim_template(template, request)
    )
    deployment = deployment_of("pointcloud", gpu_pod("pointcloud", template)["spec"])
    deployment["spec"]["template"]["metadata"]["annotations"] = annotations or {}
    client.AppsV1Api(api).create_namespaced_deployment(namespace, deployment)
    found = eventually(lambda: _running_pods(api, namespace), what="the pointcloud pod running")
    return found[0]


def _device(api: client.ApiClient, namespace: str, pod: client.V1Pod) -> str:
    return str(allocation(api, namespace, pod).device)


def test_gpu_memory_above_the_mig_profile_swaps_the_claim_with_one_recreate(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str, webhook: WebhookServer
) -> None:
    old = _pointcloud(api, bridges, "mig-1g", mig("1g.10gb"))
    assert _device(api, bridges, old).startswith("gpu-0-1g-10gb-")
    recommend(api, bridges, "Deployment", "pointcloud", {"gpu-memory": "15Gi"}, container="c1")
    reconciler = Reconciler(
        KubeCluster(as_updater), UpdaterSettings(), UpdaterMetrics(CollectorRegistry())
    )

    assert _mine(reconciler.run_pass(), bridges) == [("Recreate", "Evicted")]
    assert reconciler.settle(dt.timedelta(seconds=60))
    new = _replacement(api, bridges, old)

    template = new.spec.resource_claims[0].resource_claim_template_name
    print(f"replacement {new.metadata.name} uses template {template}")
    assert template.startswith("pointcloud-gpu-20480mi-")
    assert _device(api, bridges, new).startswith("gpu-0-2g-20gb-")
    skip = ("Skip", "requests and limits match the recommendation")
    assert _mine(reconciler.run_pass(), bridges) == [skip]
    registry = reconciler.metrics.registry
    recreations = {"reason": "ClaimSwap"}
    assert registry.get_sample_value("bridgescale_updater_recreations_total", recreations) == 1
    assert registry.get_sample_value("bridgescale_updater_claim_swaps_total") == 1


def test_a_resize_deferred_past_the_timeout_leads_to_one_eviction_at_the_new_size(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str, webhook: WebhookServer
) -> None:
    core = client.CoreV1Api(api)
    _roomy_nodes(api, cpu=2.0, count=2)  # one for the bridge, one for its larger replacement
    spec = pod_manifest("bridge", [guaranteed("router", "1", "256Mi")])["spec"]
    # Plain nodes only: on the static CPU manager node a Guaranteed cpu change is Infeasible.
    spec["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": "kubernetes.io/hostname",
                                "operator": "In",
                                "values": list(PLAIN_NODES),
                            }
                        ]
                    }
                ]
            }
        }
    }
    client.AppsV1Api(api).create_namespaced_deployment(bridges, deployment_of("bridge", spec))
    old = eventually(lambda: _running_pods(api, bridges), what="the bridge running")[0]
    node = old.spec.node_name
    filler = f"{_free_cpu(api, node):.3f}"  # the rest of the node: a larger bridge must wait
    run_pod(api, bridges, pod_manifest("filler", [guaranteed("filler", filler, "64Mi")], node))
    recommend(api, bridges, "Deployment", "bridge", {"cpu": "2", "memory": "256Mi"})
    settings = UpdaterSettings(deferral_timeout=dt.timedelta(seconds=3))
    reconciler = Reconciler(KubeCluster(as_updater), settings, UpdaterMetrics(CollectorRegistry()))

    assert _mine(reconciler.run_pass(), bridges) == [("Resize", "Accepted")]
    deferred = eventually(
        lambda: condition(core.read_namespaced_pod(old.metadata.name, bridges), "PodResizePending"),
        what="the simulated kubelet to defer the resize",
    )
    assert deferred.reason == "Deferred"
    eventually(
        lambda: ("Recreate", "Evicted") in _mine(reconciler.run_pass(), bridges),
        timeout=30,
        what="the deferral timeout to pass and the pod to be evicted",
    )
    new = eventually(
        lambda: [p for p in _running_pods(api, bridges) if p.metadata.name.startswith("bridge-")
                 and p.metadata.uid != old.metadata.uid],
        timeout=90,
        what="the replacement running",
    )[0]  # fmt: skip

    assert new.spec.node_name != node
    assert new.spec.containers[0].resources.requests == {"cpu": "2", "memory": "256Mi"}
    assert new.status.container_statuses[0].resources.requests == {"cpu": "2", "memory": "256Mi"}
    registry = reconciler.metrics.registry
    reason = {"reason": "DeferredTimeout"}
    assert registry.get_sample_value("bridgescale_updater_recreations_total", reason) == 1
    assert ("Recreate", "Evicted") not in _mine(reconciler.run_pass(), bridges)


def test_no_eviction_when_no_node_the_replacement_may_use_has_room(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str
) -> None:
    """The bridge is pinned to its node by a nodeSelector and that node is full: other nodes
    have room, but the replacement could not go there, so the updater keeps the pod."""
    node = _roomy_nodes(api, cpu=1.0)[0]
    spec = pod_manifest("bridge", [guaranteed("router", "500m", "256Mi")])["spec"]
    spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    client.AppsV1Api(api).create_namespaced_deployment(bridges, deployment_of("bridge", spec))
    old = eventually(lambda: _running_pods(api, bridges), what="the bridge running")[0]
    filler = f"{_free_cpu(api, node):.3f}"
    run_pod(api, bridges, pod_manifest("filler", [guaranteed("filler", filler, "64Mi")], node))
    recommend(api, bridges, "Deployment", "bridge", {"cpu": "1500m", "memory": "256Mi"})
    settings = UpdaterSettings(deferral_timeout=dt.timedelta(seconds=3))
    reconciler = Reconciler(KubeCluster(as_updater), settings, UpdaterMetrics(CollectorRegistry()))

    assert _mine(reconciler.run_pass(), bridges) == [("Resize", "Accepted")]
    eventually(
        lambda: ("Recreate", "NoRoom") in _mine(reconciler.run_pass(), bridges),
        timeout=30,
        what="the deferral timeout to pass and the updater to find no node for the bridge",
    )

    pod = client.CoreV1Api(api).read_namespaced_pod(old.metadata.name, bridges)
    assert pod.metadata.uid == old.metadata.uid and pod.metadata.deletion_timestamp is None
    notes = [
        e["note"]
        for e in updater_events.list_events(api, bridges, old.metadata.name)
        if e["reason"] == "RecreateDeferred"
    ]
    assert notes and "no node has room" in notes[0]
    print(notes[0])


def test_a_limit_the_kubelet_refuses_is_reverted(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str
) -> None:
    _bridge_using_300mi(api, bridges, recommended_memory="1Gi")
    too_small = {"requests": {"memory": "200Mi"}, "limits": {"memory": "200Mi"}}
    client.CoreV1Api(api).patch_namespaced_pod_resize(
        "bridge-0", bridges, {"spec": {"containers": [{"name": "router", "resources": too_small}]}}
    )  # someone else sets a limit below the 300Mi in use

    def refusal() -> str | None:
        pod = client.CoreV1Api(api).read_namespaced_pod("bridge-0", bridges)
        found = condition(pod, "PodResizeInProgress")
        return found.message if found and found.reason == "Error" else None

    print("kubelet:", eventually(refusal, what="the simulated kubelet to refuse the limit"))
    reconciler = Reconciler(
        KubeCluster(as_updater), UpdaterSettings(), UpdaterMetrics(CollectorRegistry())
    )

    assert _mine(reconciler.run_pass(), bridges) == [("Resize", "Accepted")]

    pod = wait_resized(api, bridges, "bridge-0", [Expected(guaranteed("router", "500m", "1Gi"))])
    assert pod.status.container_statuses[0].restart_count == 0


MIG_NODE = "sim-mig-0"


def _report_health(device: str, health: str) -> None:
    """The simulator's fault control: the device's driver reports this health."""
    query = urllib.parse.urlencode({"node": MIG_NODE, "device": device, "health": health})
    url = f"http://127.0.0.1:{SIMULATOR_METRICS_PORT}/devices/health?{query}"
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10):
        pass


def _health(pod: client.V1Pod) -> list[str]:
    return [
        str(resource.health)
        for status in pod.status.container_statuses or []
        for entry in status.allocated_resources_status or []
        for resource in entry.resources or []
    ]


def _load_forecast(api: client.ApiClient, namespace: str, name: str, start: dt.datetime) -> None:
    """A forecast as the recommender publishes it: 20 s steps, the second one quiet."""
    forecast = {
        "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "stepSeconds": 20,
        "cpu": [3.0, 0.5, 3.0, 3.0, 3.0, 3.0],
    }
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        "bridgescale.dev", "v1alpha1", namespace, "resourcerecommendations", name,
        {"status": {"loadForecast": forecast}},
    )  # fmt: skip


def test_an_unhealthy_gpu_leads_to_one_migration_at_the_quiet_moment_before_the_taint_evicts(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str, webhook: WebhookServer
) -> None:
    resource, core = client.ResourceV1Api(api), client.CoreV1Api(api)
    request = mig("1g.10gb")
    # The bridge tolerates the ECC taint for 90 s: the device taint eviction controller of the
    # real kube-controller-manager deletes it then, unless it has moved.
    request["tolerations"] = [
        {"key": ECC_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 90}
    ]
    old = _pointcloud(api, bridges, "mig-1g", request)
    bad = _device(api, bridges, old)
    recommend(api, bridges, "Deployment", "pointcloud", {"gpu-memory": "10Gi"}, container="c1")
    settings = UpdaterSettings(recreate_lead=dt.timedelta(seconds=30))
    reconciler = Reconciler(KubeCluster(as_updater), settings, UpdaterMetrics(CollectorRegistry()))
    rule = None
    try:
        _report_health(bad, "Unhealthy")
        eventually(
            lambda: "Unhealthy" in _health(core.read_namespaced_pod(old.metadata.name, bridges)),
            what="the kubelet to report the device Unhealthy",
        )
        rule = resource.create_device_taint_rule(taint_rule(bad, "NoExecute"))
        tainted_at = rule.spec.taint.time_added
        assert tainted_at is not None  # set by the API server
        evicts_at = tainted_at + dt.timedelta(seconds=90)
        quiet = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=20)
        _load_forecast(api, bridges, "deployment-pointcloud", quiet - dt.timedelta(seconds=20))
        print(f"device {bad} Unhealthy, tainted {tainted_at}, taint evicts at {evicts_at}")

        first = _mine(reconciler.run_pass(), bridges)
        assert first == [("Wait", first[0][1])] and "recreate planned at" in first[0][1]
        evicted = eventually(
            lambda: ("Recreate", "Evicted") in _mine(reconciler.run_pass(), bridges),
            timeout=60,
            what="the migration at the quiet moment",
        )
        migrated_at = dt.datetime.now(dt.UTC)
        assert evicted and quiet <= migrated_at < evicts_at - dt.timedelta(seconds=30)
        assert reconciler.settle(dt.timedelta(seconds=60))
        new = _replacement(api, bridges, old)
        running_at = dt.datetime.now(dt.UTC)
        healthy = _device(api, bridges, new)
        print(f"migrated at {migrated_at}, replacement on {healthy} Running at {running_at}")
        assert healthy != bad and healthy.startswith("gpu-0-1g-10gb-")
        assert running_at < evicts_at and _health(new) == ["Healthy"]

        # Past the taint's eviction time: the replacement stays, nothing else was evicted.
        time.sleep(max(0.0, (evicts_at - dt.datetime.now(dt.UTC)).total_seconds()) + 10)
        assert [(p.metadata.uid) for p in _running_pods(api, bridges)] == [new.metadata.uid]
        assert _mine(reconciler.run_pass(), bridges)[0][0] == "Skip"
        restarted = Reconciler(
            KubeCluster(as_updater), settings, UpdaterMetrics(CollectorRegistry())
        )
        assert _mine(restarted.run_pass(), bridges)[0][0] == "Skip"
        events = core.list_namespaced_event(bridges).items
        by_taint = [e for e in events if e.reason == "DeviceTaintManagerEviction"]
        ours = [e for e in events if e.reason == "GPUUnhealthyMigration"]
        assert by_taint == [] and len(ours) == 2  # the pod and its Deployment
        print(ours[0].message)
        registry = reconciler.metrics.registry
        migrations = {"reason": "GPUUnhealthyMigration"}
        assert registry.get_sample_value("bridgescale_updater_recreations_total", migrations) == 1
    finally:
        _report_health(bad, "Healthy")
        if rule is not None:
            resource.delete_device_taint_rule(rule.metadata.name)


def _templates(api: client.ApiClient, namespace: str) -> dict[str, dict[str, str]]:
    found = client.ResourceV1Api(api).list_namespaced_resource_claim_template(namespace).items
    return {str(t.metadata.name): t.metadata.labels or {} for t in found}


def test_a_gpu_shrink_waits_for_sustained_low_use_and_unused_managed_templates_go(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str, webhook: WebhookServer
) -> None:
    resource = client.ResourceV1Api(api)
    # Labelled like the updater's own, but not marked managed: never deleted.
    foreign = claim_template("look-alike", mig("1g.10gb"))
    foreign["metadata"]["labels"] = {"bridgescale.dev/workload": "Deployment.pointcloud"}
    resource.create_namespaced_resource_claim_template(bridges, foreign)
    old = _pointcloud(api, bridges, "mig-2g", mig("2g.20gb"))
    recommend(api, bridges, "Deployment", "pointcloud", {"gpu-memory": "5Gi"}, container="c1")
    low = {"containerName": "c1", "target": {"gpu-memory": "5Gi"},
           "upperBound": {"gpu-memory": "8Gi"}}  # fmt: skip
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        "bridgescale.dev", "v1alpha1", bridges, "resourcerecommendations",
        "deployment-pointcloud", {"status": {"containerRecommendations": [low]}},
    )  # fmt: skip
    settings = UpdaterSettings(gpu_shrink_after=dt.timedelta(seconds=20))
    reconciler = Reconciler(KubeCluster(as_updater), settings, UpdaterMetrics(CollectorRegistry()))

    started = time.monotonic()
    assert _mine(reconciler.run_pass(), bridges)[0][0] == "Skip"  # low use not sustained yet
    eventually(
        lambda: ("Recreate", "Evicted") in _mine(reconciler.run_pass(), bridges),
        timeout=90,
        what="the shrink once low use has lasted 20 s",
    )
    waited = time.monotonic() - started
    print(f"shrink after {waited:.1f} s of sustained low use")
    assert waited >= 20
    assert reconciler.settle(dt.timedelta(seconds=60))
    new = _replacement(api, bridges, old)
    assert _device(api, bridges, new).startswith("gpu-0-1g-10gb-")
    made = new.spec.resource_claims[0].resource_claim_template_name
    assert _templates(api, bridges)[made]["bridgescale.dev/managed"] == "true"

    # The workload goes: its managed template goes with it, the others stay.
    client.AppsV1Api(api).delete_namespaced_deployment("pointcloud", bridges)
    eventually(lambda: not _running_pods(api, bridges), timeout=60, what="the pods gone")
    reconciler.run_pass()
    assert sorted(_templates(api, bridges)) == ["look-alike", "mig-2g"]


def test_a_gpu_grow_waits_for_the_quiet_moment_unless_the_gpu_memory_is_used_up(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str, webhook: WebhookServer
) -> None:
    # The bridge wants 12Gi of GPU memory: its 10Gi slice is used up.
    wants = {"sim.bridgescale.dev/profile": "constant", "sim.bridgescale.dev/gpu-memory": "12Gi"}
    _pointcloud(api, bridges, "mig-1g", mig("1g.10gb"), wants)
    recommend(api, bridges, "Deployment", "pointcloud", {"gpu-memory": "15Gi"}, container="c1")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    forecast = {"start": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "stepSeconds": 3600,
                "cpu": [4.0, 3.0, 0.5, 2.0, 4.0, 4.0]}  # fmt: skip
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        "bridgescale.dev", "v1alpha1", bridges, "resourcerecommendations",
        "deployment-pointcloud", {"status": {"loadForecast": forecast}},
    )  # fmt: skip

    # Without usage the grow is not urgent: it waits for the quiet hour, two hours ahead.
    blind = Reconciler(
        KubeCluster(as_updater), UpdaterSettings(), UpdaterMetrics(CollectorRegistry())
    )
    ((decision, reason),) = _mine(blind.run_pass(), bridges)
    print(reason)
    assert decision == "Wait"
    assert f"recreate planned at {(now + dt.timedelta(hours=2)):%Y-%m-%dT%H:%M:%SZ}" in reason

    # DCGM shows the slice's memory used up: the grow goes at once.
    usage = ScrapedUsage(f"http://127.0.0.1:{SIMULATOR_METRICS_PORT}/metrics")
    seeing = Reconciler(
        KubeCluster(as_updater), UpdaterSettings(), UpdaterMetrics(CollectorRegistry()), usage=usage
    )
    eventually(
        lambda: _mine(seeing.run_pass(), bridges) == [("Recreate", "Evicted")],
        timeout=60,
        what="the urgent grow",
    )
