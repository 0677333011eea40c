"""`bridgescale dev up|status|down` as a user runs them: the env file, a client loaded from it,
the simulated nodes and the demo fleet with a week of history in Prometheus, and nothing left
running afterwards."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes import client, config
from prometheus_api_client import PrometheusConnect

from tests.cluster.conftest import TEST_PORT_BASE, cluster_settings

CLI = [sys.executable, "-m", "bridgescale"]


def _running_from(state_dir: Path) -> list[str]:
    """Command lines of live processes whose arguments mention `state_dir`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if str(state_dir) in cmdline and state != "Z":
            found.append(cmdline)
    return found


def _dev(action: str, state_dir: Path, port_base: int) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, BRIDGESCALE_DEV_PORT_BASE=str(port_base))
    return subprocess.run(
        [*CLI, "dev", action, "--state-dir", str(state_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_up_writes_env_status_reports_and_down_leaves_nothing() -> None:
    settings = cluster_settings("cli", port_base=TEST_PORT_BASE + 100)
    state_dir = settings.resolved_state_dir()
    shutil.rmtree(state_dir, ignore_errors=True)  # a first `dev up`, as on a fresh checkout
    try:
        up = _dev("up", state_dir, settings.port_base)
        assert up.returncode == 0, up.stderr

        env = dict(line.split("=", 1) for line in (state_dir / "env").read_text().splitlines())
        kubeconfig = Path(env["KUBECONFIG"])
        assert kubeconfig.is_absolute()
        with config.new_client_from_config(config_file=str(kubeconfig)) as api:
            version = client.VersionApi(api).get_code()
            namespaces = client.CoreV1Api(api).list_namespace().items
        print(f"dev up: server {version.git_version}, {len(namespaces)} namespaces")
        assert int(version.minor.rstrip("+")) >= 36
        assert "kube-system" in {ns.metadata.name for ns in namespaces}

        with urllib.request.urlopen(f"{env['PROMETHEUS_URL']}/-/ready", timeout=5) as ready:
            assert ready.status == 200
        _check_fleet_and_history(kubeconfig, env["PROMETHEUS_URL"])
        _check_recommendations_of_the_fleet(env, kubeconfig)

        status = _dev("status", state_dir, settings.port_base)
        assert status.returncode == 0, status.stderr
        components = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
        for component in (*components, "node-simulator", "prometheus"):
            assert component in status.stdout
        assert "stopped" not in status.stdout
    finally:
        down = _dev("down", state_dir, settings.port_base)
    assert down.returncode == 0, down.stderr
    assert _running_from(state_dir) == []
    assert not (state_dir / "env").exists()
    after = _dev("status", state_dir, settings.port_base)
    assert after.returncode == 3
    assert "not ready" in after.stdout


def _check_fleet_and_history(kubeconfig: Path, prometheus_url: str) -> None:
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        nodes = client.CoreV1Api(api).list_node().items
        pods = client.CoreV1Api(api).list_namespaced_pod("bridges").items
        bridges = client.CoreV1Api(api).read_namespace("bridges")
    assert len(nodes) == 5
    assert bridges.metadata.labels["bridgescale.dev/enabled"] == "true"
    assert len(pods) == 5
    assert all(pod.status.phase == "Running" for pod in pods)
    gpu_pods = [pod for pod in pods if pod.spec.resource_claims]
    assert len(gpu_pods) == 1

    end = dt.datetime.now(dt.UTC)
    result = PrometheusConnect(prometheus_url).custom_query_range(
        'container_memory_working_set_bytes{namespace="bridges"}',
        start_time=end - dt.timedelta(days=7, minutes=30),
        end_time=end,
        step="10m",
    )
    # One series per container: the backfilled week and live scraping are the same series.
    assert {(s["metric"]["pod"], s["metric"]["container"]) for s in result} == {
        (pod.metadata.name, container.name) for pod in pods for container in pod.spec.containers
    }
    assert len(result) == 10
    for series in result:
        stamps = [float(t) for t, _ in series["values"]]
        span_days = (max(stamps) - min(stamps)) / 86400
        assert span_days >= 7.0, (series["metric"], span_days)
    print(f"history: {len(result)} series of working set spanning >= 7 days")


def _bridgescale(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *arguments],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _check_recommendations_of_the_fleet(env: dict[str, str], kubeconfig: Path) -> None:
    """The recommender's promises on the demo fleet: advice for every container, a GPU memory
    target where a container has a GPU claim, one ResourceRecommendation per workload of the
    opted-in namespace and none elsewhere."""
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        core.create_namespace({"metadata": {"name": "not-opted-in"}})
        apps.create_namespaced_deployment(
            "not-opted-in",
            {
                "metadata": {"name": "idle"},
                "spec": {
                    "selector": {"matchLabels": {"app": "idle"}},
                    "template": {
                        "metadata": {"labels": {"app": "idle"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "idle",
                                    "image": "idle",
                                    "resources": {"requests": {"cpu": "10m"}},
                                }
                            ]
                        },
                    },
                },
            },
        )
        pods = core.list_namespaced_pod("bridges").items

    report = _bridgescale(env, "recommend", "--namespace", "bridges", "--output", "json")
    assert report.returncode == 0, report.stderr
    rows = json.loads(report.stdout)["recommendations"]
    workloads = {
        (pod.metadata.owner_references[0].kind, pod.metadata.owner_references[0].name)
        for pod in pods
    }
    print(f"recommend: {len(rows)} containers advised")
    assert {(r["name"], r["container"]) for r in rows} == {
        (name, container)
        for name in ("lidar-bridge", "camera-bridge", "pointcloud")
        for container in ("router", "telemetry")
    }
    for row in rows:
        assert {"cpu", "memory"} <= set(row["target"]), row
        with_gpu = (row["name"], row["container"]) == ("pointcloud", "router")
        assert ("gpu-memory" in row["target"]) == with_gpu, row
    assert len(workloads) == 3

    cycle = _bridgescale(env, "recommender", "--once", "--no-leader-election")
    assert cycle.returncode == 0, cycle.stderr
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        custom = client.CustomObjectsApi(api)
        published = custom.list_cluster_custom_object(
            "bridgescale.dev", "v1alpha1", "resourcerecommendations"
        )["items"]
    found = {
        (r["metadata"]["namespace"], r["spec"]["targetRef"]["kind"], r["metadata"]["name"])
        for r in published
    }
    print(f"recommender --once published: {sorted(found)}")
    assert found == {
        ("bridges", "StatefulSet", "lidar-bridge"),
        ("bridges", "Deployment", "camera-bridge"),
        ("bridges", "Deployment", "pointcloud"),
    }

    # A new recommender process starts from the checkpoints the first one left in the API
    # server, not from nothing: it goes on from the hour the first one took in and the history
    # it had read. A third process, restored from the second's checkpoints, then publishes just
    # what the second did (both reading the same history: within one step of the recommender).
    _within_one_step(45)
    restored = []
    for _ in range(2):
        again = _bridgescale(env, "recommender", "--once", "--no-leader-election")
        assert again.returncode == 0, again.stderr
        assert "namespace bridges: 6 containers restored from checkpoints" in again.stderr
        with config.new_client_from_config(config_file=str(kubeconfig)) as api:
            restored.append(
                client.CustomObjectsApi(api).list_namespaced_custom_object(
                    "bridgescale.dev", "v1alpha1", "bridges", "resourcerecommendations"
                )["items"]
            )
    second, third = (_targets(items) for items in restored)
    assert set(second) == set(_targets(published))  # every container, from the checkpoints
    assert third == second
    print(f"restored twice: {len(third)} containers, the same targets")


def _within_one_step(seconds: float, step: int = 300) -> None:
    """Return with at least `seconds` left before the next multiple of `step` (the
    recommender's default read resolution, so runs until then read the same history)."""
    left = step - time.time() % step
    if left < seconds:
        time.sleep(left + 1)


def _targets(recommendations: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, str]]:
    return {
        (r["metadata"]["name"], c["containerName"]): c["target"]
        for r in recommendations
        for c in r["status"]["containerRecommendations"]
    }
