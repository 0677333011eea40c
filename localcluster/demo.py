"""The demo's moving parts on the local environment: the recommender and the updater as the
services they are, the scenario played on the fleet, and snapshots of what happens to it.

The services run with settings that let a few minutes show a reaction (`DEMO_SETTINGS`): a
cycle every 15 s reading 1-minute steps (the default reads 5-minute steps once a minute), and
an updater pass every 10 s. Everything else is as deployed. The week of history is read before,
by a first cycle at the default step: the backfilled week has 2-minute resolution, too coarse
for a 1-minute cpu rate; the services continue from that cycle's checkpoints.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import urllib3
from kubernetes import client

from bridgescale import kube
from bridgescale.history import History, PrometheusSettings, PrometheusUnavailable
from bridgescale.kube import claims, pods, recommendations
from bridgescale.localcluster.demo_report import ContainerView, Snapshot
from bridgescale.localcluster.environment import LocalEnvironment
from bridgescale.localcluster.fleet import NAMESPACE
from bridgescale.localcluster.prometheus import ScrapeTarget
from bridgescale.localcluster.scenario import Phase, changes
from bridgescale.quantity import RESOURCES, QuantityError, Resource, parse

RECOMMENDER = "bridgescale-recommender"
UPDATER = "bridgescale-updater"
DEMO_SETTINGS = {
    "BRIDGESCALE_RECOMMENDER_INTERVAL_SECONDS": "15",
    "BRIDGESCALE_RECOMMENDER_STEP_SECONDS": "60",
    "BRIDGESCALE_UPDATER_RESYNC_SECONDS": "10",
}
# What reading the fleet can fail with on a busy machine: worth a retry, not a traceback.
READ_ERRORS = (kube.KubeError, PrometheusUnavailable, urllib3.exceptions.HTTPError)
READY_SECONDS = 180.0
USAGE_WINDOW_SECONDS = 60


class ServiceFailed(RuntimeError):
    """A service of the demo did not start, or stopped; the message names it and its log."""


def user_env(environment: LocalEnvironment) -> dict[str, str]:
    """This process's environment with the env file's values (KUBECONFIG, Prometheus URL) over
    it, as for a user who sourced the env file."""
    env = dict(os.environ)
    for line in environment.env_file.read_text().splitlines():
        key, _, value = line.partition("=")
        if key:
            env[key] = value
    return env


class Services:
    """`bridgescale recommender` and `bridgescale updater` as processes of the environment's
    supervisor (so `dev down` stops them too), their /metrics registered with Prometheus."""

    def __init__(self, environment: LocalEnvironment) -> None:
        self.environment = environment
        settings = environment.settings
        self.recommender_address = f"127.0.0.1:{settings.recommender_metrics_port}"
        self.updater_address = f"127.0.0.1:{settings.updater_metrics_port}"

    def start(self) -> None:
        self.stop()  # a demo stopped hard may have left them: start from the settings above
        supervisor = self.environment.supervisor
        env = {
            **user_env(self.environment),
            **DEMO_SETTINGS,
            "BRIDGESCALE_RECOMMENDER_HOST": "127.0.0.1",
        }
        bridgescale = [sys.executable, "-m", "bridgescale"]
        supervisor.start(
            RECOMMENDER,
            [*bridgescale, "recommender", "--no-leader-election", "--port",
             str(self.environment.settings.recommender_metrics_port)],
            env,
        )  # fmt: skip
        simulator = f"http://127.0.0.1:{self.environment.settings.simulator_metrics_port}"
        supervisor.start(
            UPDATER,
            [*bridgescale, "updater", "--lease-namespace", "",
             "--metrics-address", "127.0.0.1",
             "--metrics-port", str(self.environment.settings.updater_metrics_port),
             "--usage-metrics-url", f"{simulator}/metrics"],
            env,
        )  # fmt: skip
        prometheus = self.environment.prometheus
        prometheus.register(ScrapeTarget(RECOMMENDER, self.recommender_address))
        prometheus.register(ScrapeTarget(UPDATER, self.updater_address))

    def wait_ready(self, timeout: float = READY_SECONDS) -> None:
        """Until the recommender has ended a cycle and the updater serves its metrics."""
        deadline = time.monotonic() + timeout
        for name, url in (
            (RECOMMENDER, f"http://{self.recommender_address}/readyz"),
            (UPDATER, f"http://{self.updater_address}/metrics"),
        ):
            while not _answers(url):
                self.check()
                if time.monotonic() > deadline:
                    raise ServiceFailed(
                        f"{name} was not ready within {timeout:.0f} s; see {self.log(name)}"
                    )
                time.sleep(1)

    def check(self) -> None:
        """Raise ServiceFailed if a service is no longer running."""
        for name in (RECOMMENDER, UPDATER):
            if self.environment.supervisor.find(name) is None:
                raise ServiceFailed(f"{name} stopped; see {self.log(name)}")

    def log(self, name: str) -> str:
        return str(self.environment.supervisor.logs_dir / f"{name}.log")

    def stop(self) -> None:
        for name in (UPDATER, RECOMMENDER):
            self.environment.supervisor.stop(name)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (loopback http)
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def play(api: client.ApiClient, phase: Phase) -> int:
    """Put the phase's load annotations on every pod of the fleet; how many pods changed."""
    changed = 0
    for pod in pods.list_pods(api, NAMESPACE):
        metadata = pod["metadata"]
        if metadata.get("deletionTimestamp"):
            continue
        wanted = phase.annotations((metadata.get("labels") or {}).get("app", ""))
        patch = changes(metadata.get("annotations") or {}, wanted)
        if patch:
            try:
                pods.annotate_pod(api, NAMESPACE, metadata["name"], patch)
            except kube.NotFound:
                continue  # gone since the list; its replacement gets them at the next tick
            changed += 1
    return changed


class Observer:
    """Reads a snapshot of the fleet: pods (applied resources, restarts), recommendations,
    claims from the API server, and usage from Prometheus."""

    def __init__(self, api: client.ApiClient, prometheus_url: str) -> None:
        self.api = api
        self.history = History(PrometheusSettings(url=prometheus_url, retries=1))

    def snapshot(self, seconds: float, phase: str) -> Snapshot:
        targets = {
            published.name: _targets(published.status)
            for published in recommendations.list_recommendations(self.api, NAMESPACE)
        }
        devices = _devices_by_pod(claims.list_claims(self.api))
        usage = self.history.current_usage(NAMESPACE, USAGE_WINDOW_SECONDS)
        views = []
        for pod in pods.list_pods(self.api, NAMESPACE):
            if pod.get("status", {}).get("phase") != "Running":
                continue
            if pod["metadata"].get("deletionTimestamp"):
                continue
            views += _views(pod, targets, devices, usage)
        return Snapshot(seconds, phase, tuple(views))


def _views(
    pod: Mapping[str, Any],
    targets: Mapping[str, Mapping[str, dict[Resource, float]]],
    devices: Mapping[str, tuple[str, ...]],
    usage: Mapping[tuple[str, str], Mapping[Resource, float]],
) -> list[ContainerView]:
    metadata = pod["metadata"]
    # The demo fleet labels each pod with its workload's name.
    workload = (metadata.get("labels") or {}).get("app", "")
    views = []
    for status in pod.get("status", {}).get("containerStatuses") or []:
        name = status["name"]
        applied = status.get("resources") or {}
        terminated = (status.get("lastState") or {}).get("terminated") or {}
        views.append(
            ContainerView(
                pod=metadata["name"],
                uid=metadata["uid"],
                workload=workload,
                container=name,
                used=dict(usage.get((metadata["name"], name), {})),
                target=targets.get(workload, {}).get(name, {}),
                requests=_quantities(applied.get("requests") or {}),
                limits=_quantities(applied.get("limits") or {}),
                restarts=int(status.get("restartCount") or 0),
                last_termination=terminated.get("reason"),
                gpu_devices=devices.get(metadata["uid"], ()) if name == "router" else (),
            )
        )
    return views


def _quantities(values: Mapping[str, Any]) -> dict[Resource, float]:
    result: dict[Resource, float] = {}
    for resource in RESOURCES:
        if resource in values:
            try:
                result[resource] = parse(values[resource], resource)
            except QuantityError:
                continue  # shown as unknown; the demo reads, it does not judge
    return result


def _targets(status: Mapping[str, Any]) -> dict[str, dict[Resource, float]]:
    return {
        entry["containerName"]: _quantities(entry.get("target") or {})
        for entry in status.get("containerRecommendations") or []
        if "containerName" in entry
    }


def _devices_by_pod(found: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Allocated device names of the fleet's claims, by the uid of the pod they are reserved
    for (a MIG-like device's name says its profile, e.g. gpu-0-1g-10gb-3)."""
    result: dict[str, tuple[str, ...]] = {}
    for claim in found:
        if claim["metadata"].get("namespace") != NAMESPACE:
            continue
        status = claim.get("status") or {}
        results = ((status.get("allocation") or {}).get("devices") or {}).get("results") or []
        names = tuple(r["device"] for r in results if "device" in r)
        for consumer in status.get("reservedFor") or []:
            if "uid" in consumer:
                result[consumer["uid"]] = result.get(consumer["uid"], ()) + names
    return result
