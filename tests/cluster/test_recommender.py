"""The recommender against the real API server and a real Prometheus holding two days of
backfilled history under the exporters' own metric names and labels (cAdvisor, kube-state-metrics,
DCGM). It runs as its own process, authenticated as its service account with the RBAC from
deploy/recommender/, so RBAC that is too narrow fails here."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from bridgescale import kube
from bridgescale.localcluster.environment import LocalEnvironment
from bridgescale.localcluster.processes import ProcessSupervisor
from bridgescale.localcluster.prometheus import MetricFamily, PrometheusServer, SeriesHistory
from bridgescale.localcluster.settings import find_project_root
from bridgescale.quantity import parse
from bridgescale.updater.recommendations import recommendation_from_json

from .conftest import TEST_PORT_BASE, wait_for_default_account

Json = dict[str, Any]
ROOT = find_project_root(Path(__file__))
PROMETHEUS_PORT = TEST_PORT_BASE + 20
SERVICE_PORT = TEST_PORT_BASE + 21
MIB = 1024**2
GIB = 1024**3
HOURS = 48
ROUTER_POD = "router-6d8f9c7b5-x2k4q"  # a past pod of the Deployment: history outlives pods
SHARED_POD = "shared"  # a bridge with pod-level resources: router and telemetry in one budget


def _times(now: float) -> list[float]:
    return [now - HOURS * 3600 + 60 * i for i in range(HOURS * 60)]


def _series(
    name: str,
    namespace: str,
    pod: str,
    container: str,
    points: Sequence[tuple[float, float]],
    **extra: str,
) -> SeriesHistory:
    labels = {"namespace": namespace, "pod": pod, "container": container, **extra}
    return SeriesHistory(name, labels, points)


def _history(namespace: str, other: str, now: float) -> list[MetricFamily]:
    times = _times(now)
    half = times[len(times) // 2]
    cpu_points = [(t, 0.5 * (t - (half if t >= half else times[0]))) for t in times]  # a reset
    oom_at = now - 1800
    containers = (
        (namespace, ROUTER_POD, "router"),
        (namespace, "gpu-bridge-0", "decimator"),
        (namespace, "probe", "probe"),
        (other, "quiet-5f6d7c8b9-abcde", "quiet"),
        (namespace, SHARED_POD, "router"),
        (namespace, SHARED_POD, "telemetry"),
    )
    wave = [(t, 600 * MIB + 100 * MIB * math.sin(t / 3600)) for t in times]
    # In opposite phase: each peaks at 3.5Gi, their sum stays at 4Gi.
    shared = {
        c: [(t, 2 * GIB + sign * 1.5 * GIB * math.sin(t / 3600)) for t in times]
        for c, sign in (("router", 1), ("telemetry", -1))
    }
    cpu = MetricFamily(
        "container_cpu_usage_seconds",
        "counter",
        "cpu",
        [
            _series("container_cpu_usage_seconds", ns, pod, c, cpu_points, cpu="total")
            for ns, pod, c in containers
        ],
    )
    memory = MetricFamily(
        "container_memory_working_set_bytes",
        "gauge",
        "working set",
        [
            _series(
                "container_memory_working_set_bytes",
                ns,
                pod,
                c,
                shared[c] if pod == SHARED_POD else wave,
            )
            for ns, pod, c in containers
        ],
    )
    ooms = MetricFamily(
        "container_oom_events",
        "counter",
        "ooms",
        [
            _series(
                "container_oom_events",
                namespace,
                ROUTER_POD,
                "router",
                [(t, 1.0 if t >= oom_at else 0.0) for t in times],
            )
        ],
    )
    gpu_memory = MetricFamily(
        "DCGM_FI_DEV_FB_USED",
        "gauge",
        "framebuffer used in MiB",
        [
            _series(
                "DCGM_FI_DEV_FB_USED",
                namespace,
                "gpu-bridge-0",
                "decimator",
                [(t, 4000.0 + 500 * math.sin(t / 3600)) for t in times],
                gpu="0",
                UUID="GPU-0",
                modelName="Simulated GPU",
            )
        ],
    )
    return [cpu, memory, ooms, gpu_memory]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    folder = tmp_path_factory.mktemp("prometheus")
    supervisor = ProcessSupervisor(folder)
    server = PrometheusServer(folder, supervisor, PROMETHEUS_PORT)
    server.supervisor = supervisor  # type: ignore[attr-defined]
    yield server
    supervisor.stop_all(timeout=10)


def _container(name: str, memory_limit: str = "1Gi", claims: list[str] | None = None) -> Json:
    resources: Json = {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": memory_limit},
    }
    if claims:
        resources["claims"] = [{"name": c} for c in claims]
    return {"name": name, "image": "bridge:1", "resources": resources}


def _deployment(name: str, container: Json) -> Json:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


def _fleet(namespace: str) -> list[Json]:
    labels = {"app": "gpu-bridge"}
    stateful_set = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "gpu-bridge"},
        "spec": {
            "serviceName": "gpu-bridge",
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [_container("decimator", "2Gi", claims=["gpu"])],
                    "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "gpu-slice"}],
                },
            },
        },
    }
    probe = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "probe",
            "annotations": {
                "bridgescale.dev/max-allowed": "cpu=lots",
                "bridgescale.dev/min-allowed": "memory=700Mi",
            },
        },
        "spec": {"containers": [_container("probe")]},
    }
    envelope = {"cpu": "1", "memory": "8Gi"}
    shared = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": SHARED_POD},
        "spec": {
            "resources": {"requests": envelope, "limits": envelope},
            "containers": [
                {"name": "router", "image": "bridge:1", "resources": {"requests": {"cpu": "250m"}}},
                {"name": "telemetry", "image": "telemetry:1"},
            ],
        },
    }
    objects = [_deployment("router", _container("router")), stateful_set, probe, shared]
    for obj in objects:
        obj["metadata"]["namespace"] = namespace
    return objects


def _vpa(namespace: str) -> Json:
    return {
        "apiVersion": "autoscaling.k8s.io/v1",
        "kind": "VerticalPodAutoscaler",
        "metadata": {"name": "router", "namespace": namespace},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "router"},
            "recommenders": [{"name": "bridgescale"}],
            "resourcePolicy": {
                "containerPolicies": [{"containerName": "*", "maxAllowed": {"cpu": "300m"}}]
            },
        },
    }


@pytest.fixture(scope="module")
def bridges(
    api: client.ApiClient, crds: list[str], prometheus: PrometheusServer
) -> Iterator[tuple[str, str]]:
    """A labelled namespace with a Deployment, a StatefulSet with a GPU claim and a bare pod,
    an unlabelled one with a Deployment, and Prometheus holding their history."""
    suffix = uuid.uuid4().hex[:6]
    namespace, other = f"bridges-{suffix}", f"quiet-{suffix}"
    core = client.CoreV1Api(api)
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=namespace, labels={"bridgescale.dev/enabled": "true"})
        )
    )
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    for created in (namespace, other):
        wait_for_default_account(api, created)
    kube.apply(api, kube.load_manifests(ROOT / "tests/cluster/manifests/vpa-crd.yaml"))
    time.sleep(2)  # the VPA CRD becomes established
    quiet = _deployment("quiet", _container("quiet"))
    quiet["metadata"]["namespace"] = other
    kube.apply(api, [*_fleet(namespace), quiet, _vpa(namespace)])
    now = time.time() // 60 * 60 - 120
    prometheus.backfill(_history(namespace, other, now))
    prometheus.start()
    yield namespace, other
    core.delete_namespace(namespace)
    core.delete_namespace(other)


@pytest.fixture(scope="module")
def recommender_kubeconfig(
    local_cluster: LocalEnvironment, api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    manifests = kube.load_manifests(
        ROOT / "deploy/system/namespace.yaml", ROOT / "deploy/recommender/rbac.yaml"
    )
    kube.apply(api, manifests)
    path = tmp_path_factory.mktemp("sa") / "recommender.yaml"
    return local_cluster.mint_kubeconfig("bridgescale-system", "bridgescale-recommender", path)


def _bridgescale(kubeconfig: Path, prometheus: PrometheusServer, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bridgescale",
        "--log-format",
        "json",
        *args,
        "--kubeconfig",
        str(kubeconfig),
        "--prometheus-url",
        prometheus.url,
    ]


def _environment() -> dict[str, str]:
    return {**os.environ, "BRIDGESCALE_PROMETHEUS_RETRIES": "1"}


def _recommendations(api: client.ApiClient, namespace: str) -> dict[str, Json]:
    found = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "bridgescale.dev", "v1alpha1", namespace, "resourcerecommendations"
    )
    return {item["metadata"]["name"]: item for item in found["items"]}


def _targets(recommendation: Json) -> dict[str, dict[str, str]]:
    return {
        c["containerName"]: c["target"]
        for c in recommendation.get("status", {}).get("containerRecommendations", [])
    }


def test_once_publishes_for_every_workload_of_opted_in_namespaces_only(
    api: client.ApiClient,
    bridges: tuple[str, str],
    prometheus: PrometheusServer,
    recommender_kubeconfig: Path,
) -> None:
    namespace, other = bridges
    started = time.monotonic()
    run = subprocess.run(
        _bridgescale(recommender_kubeconfig, prometheus, "recommender", "--once"),
        capture_output=True,
        text=True,
        timeout=300,
        env=_environment(),
        check=False,
    )
    print(f"one cycle as a process in {time.monotonic() - started:.1f} s")
    assert run.returncode == 0, run.stderr[-3000:]
    # RBAC that is too narrow shows as the API server's `User "..." cannot <verb> ...`; a 403 for
    # a namespace that another test is deleting is not about the recommender's RBAC.
    refused = re.search(r'User \\?"system:serviceaccount:[^"\\]+\\?" cannot', run.stderr)
    assert refused is None, run.stderr[-3000:]

    published = _recommendations(api, namespace)
    assert set(published) == {"router", "gpu-bridge", "probe", SHARED_POD}
    assert _recommendations(api, other) == {}
    assert published["router"]["spec"]["targetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "router",
    }
    targets = {name: _targets(rr) for name, rr in published.items()}
    for name, container in (
        ("router", "router"),
        ("gpu-bridge", "decimator"),
        ("probe", "probe"),
        (SHARED_POD, "router"),
    ):
        assert {"cpu", "memory"} <= set(targets[name][container]), targets[name]
    assert "gpu-memory" in targets["gpu-bridge"]["decimator"]
    assert "gpu-memory" not in targets["router"]["router"]

    # The OOM kill at a 1Gi limit raises memory above 1Gi at once, though usage peaked at 700Mi.
    memory = parse(targets["router"]["router"]["memory"], "memory")
    assert memory >= 1.2 * GIB
    # The VPA's maxAllowed caps cpu; the bare pod's valid min-allowed applies.
    assert parse(targets["router"]["router"]["cpu"], "cpu") <= 0.3
    assert parse(targets["probe"]["probe"]["memory"], "memory") >= 700 * MIB

    # The envelope follows the peak of the sum (4Gi), not the sum of the peaks (7Gi); the
    # telemetry container, with no resources of its own, gets no recommendation.
    assert set(targets[SHARED_POD]) == {"router"}
    envelope = published[SHARED_POD]["status"]["podRecommendation"]
    assert 4 * GIB <= parse(envelope["target"]["memory"], "memory") <= 5 * GIB
    assert "podRecommendation" not in published["router"]["status"]

    conditions = {c["type"]: c for c in published["router"]["status"]["conditions"]}
    assert conditions["RecommendationProvided"]["status"] == "True"
    assert conditions["PrometheusUnavailable"]["status"] == "False"

    # The router ran at 0.5 cores all along: so is its load forecast, which the updater reads
    # to recreate pods at the quietest hour, hour by hour; but for the hour of day in which the
    # history starts (its first step has no rate yet) and the one of its counter reset (the
    # step of the reset counts less), which read lower by a part of a step.
    forecast = published["router"]["status"]["loadForecast"]
    assert forecast["stepSeconds"] == 3600 and len(forecast["cpu"]) == 24
    steady = sorted(abs(cores - 0.5) for cores in forecast["cpu"])
    assert steady[-3] < 0.05 and steady[-1] < 0.15, forecast
    assert recommendation_from_json(published["router"]).forecast is not None

    vpa = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "autoscaling.k8s.io", "v1", namespace, "verticalpodautoscalers", "router"
    )
    (entry,) = vpa["status"]["recommendation"]["containerRecommendations"]
    assert entry["containerName"] == "router"
    assert set(entry["target"]) == {"cpu", "memory"}

    events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector="involvedObject.name=probe"
    )
    messages = [e.message or "" for e in events.items if e.reason == "InvalidPolicy"]
    assert any("bridgescale.dev/max-allowed" in m and "lots" in m for m in messages), messages

    checkpoints = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "bridgescale.dev", "v1alpha1", namespace, "recommendercheckpoints"
    )
    assert {c["spec"]["targetRef"]["name"] for c in checkpoints["items"]} == {
        "router",
        "gpu-bridge",
        "probe",
        SHARED_POD,
    }


def test_recommend_json_lists_every_container(
    api: client.ApiClient,
    bridges: tuple[str, str],
    prometheus: PrometheusServer,
    recommender_kubeconfig: Path,
) -> None:
    namespace, _ = bridges
    run = subprocess.run(
        [
            *_bridgescale(recommender_kubeconfig, prometheus, "recommend"),
            "--namespace",
            namespace,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=_environment(),
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(run.stdout)["recommendations"]
    by_container = {(r["kind"], r["name"], r["container"]): r for r in rows}
    assert set(by_container) == {
        ("Deployment", "router", "router"),
        ("StatefulSet", "gpu-bridge", "decimator"),
        ("Pod", "probe", "probe"),
        ("Pod", SHARED_POD, "router"),
        ("Pod", SHARED_POD, ""),  # the envelope
    }
    for row in rows:
        assert {"cpu", "memory"} <= set(row["target"])
        assert set(row) >= {"namespace", "current", "lowerBound", "upperBound"}
    assert "gpu-memory" in by_container[("StatefulSet", "gpu-bridge", "decimator")]["target"]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError:
        return 0, ""


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.fault
def test_service_metrics_and_a_prometheus_outage_keeps_recommendations(
    api: client.ApiClient,
    bridges: tuple[str, str],
    prometheus: PrometheusServer,
    recommender_kubeconfig: Path,
    tmp_path: Path,
    checked: Callable[[str], None],
) -> None:
    namespace, _ = bridges
    base = f"http://127.0.0.1:{SERVICE_PORT}"
    log = (tmp_path / "recommender.log").open("w")
    service = subprocess.Popen(
        [
            *_bridgescale(recommender_kubeconfig, prometheus, "recommender"),
            "--interval",
            "5",
            "--port",
            str(SERVICE_PORT),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
        env={**_environment(), "BRIDGESCALE_RECOMMENDER_HOST": "127.0.0.1"},
    )
    try:
        _wait_for(lambda: _get(f"{base}/readyz")[0] == 200, 120, "readiness")
        assert _get(f"{base}/healthz")[0] == 200
        metrics = _get(f"{base}/metrics")[1]
        assert (
            f'bridgescale_recommendation{{bound="target",container="router",kind="Deployment",'
            f'namespace="{namespace}",resource="memory",workload="router"}}' in metrics
        )
        before = _targets(_recommendations(api, namespace)["router"])

        prometheus.supervisor.stop("prometheus")  # type: ignore[attr-defined]

        def unavailable() -> bool:
            status = _recommendations(api, namespace)["router"]["status"]
            kinds = {c["type"]: c["status"] for c in status["conditions"]}
            return kinds.get("PrometheusUnavailable") == "True"

        _wait_for(unavailable, 120, "the PrometheusUnavailable condition")
        after = _recommendations(api, namespace)["router"]
        assert _targets(after) == before
        provided = {c["type"]: c["status"] for c in after["status"]["conditions"]}
        assert provided["RecommendationProvided"] == "True"
        assert 'resource="memory",workload="router"' in _get(f"{base}/metrics")[1]
        checked(
            "Prometheus stopped under the running service: PrometheusUnavailable True, targets "
            "and RecommendationProvided kept, /metrics still serves the last recommendations"
        )
    finally:
        service.terminate()
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
        log.close()
        print((tmp_path / "recommender.log").read_text()[-4000:])
        prometheus.start()


def _connected_to(port: int) -> bool:
    """Whether some local socket has a TCP connection established to `port` on loopback."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state = fields[2], fields[3]
        if state == "01" and int(remote.split(":")[1], 16) == port:
            return True
    return False


def _once(kubeconfig: Path, prometheus: PrometheusServer) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _bridgescale(kubeconfig, prometheus, "recommender", "--once"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_environment(),
    )


@pytest.mark.fault
def test_prometheus_killed_in_the_middle_of_a_query_keeps_the_last_recommendations(
    api: client.ApiClient,
    bridges: tuple[str, str],
    prometheus: PrometheusServer,
    recommender_kubeconfig: Path,
    checked: Callable[[str], None],
) -> None:
    namespace, _ = bridges
    first = _once(recommender_kubeconfig, prometheus)
    assert first.wait(timeout=300) == 0, first.communicate()[0][-3000:]
    before = _recommendations(api, namespace)
    supervisor: ProcessSupervisor = prometheus.supervisor  # type: ignore[attr-defined]
    process = supervisor.find("prometheus")
    assert process is not None

    # Frozen, Prometheus still accepts connections (the kernel does) but answers none: the
    # cycle's first query is then in flight when the process is killed.
    os.kill(process.pid, signal.SIGSTOP)
    try:
        cycle = _once(recommender_kubeconfig, prometheus)
        _wait_for(lambda: _connected_to(PROMETHEUS_PORT), 120, "a query to Prometheus")
    finally:
        os.kill(process.pid, signal.SIGKILL)
    output = cycle.communicate(timeout=300)[0]
    supervisor.stop("prometheus")
    print(output[-3000:])
    after = _recommendations(api, namespace)
    conditions = {c["type"]: c for c in after["router"]["status"]["conditions"]}
    unavailable = conditions["PrometheusUnavailable"]
    assert unavailable["status"] == "True"
    assert {n: _targets(r) for n, r in after.items()} == {n: _targets(r) for n, r in before.items()}
    assert cycle.returncode == 1
    assert "Traceback" not in output

    prometheus.start()
    again = _once(recommender_kubeconfig, prometheus)
    assert again.wait(timeout=300) == 0, again.communicate()[0][-3000:]
    recovered = _recommendations(api, namespace)
    conditions = {c["type"]: c for c in recovered["router"]["status"]["conditions"]}
    assert conditions["PrometheusUnavailable"]["status"] == "False"
    assert set(recovered) == set(before)
    checked(
        f"Prometheus SIGKILLed with a query in flight: the cycle ended with exit 1 and no "
        f"traceback; {len(after)} recommendations kept their targets with PrometheusUnavailable "
        f"True ({unavailable['message'][:80]!r}); after a restart the next cycle cleared it"
    )
