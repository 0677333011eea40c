"""How fast the updater carries new recommendations to a fleet: 1,000 pods on simulated nodes
get recommendations above their requests, and the updater resizes them all in place.

    .venv/bin/python bench/updater.py [--pods 1000] [--nodes 20] [--port-base 21640]
                                      [--keep-cluster] [--state-dir DIR]

It starts its own local cluster (state in .bridgescale/bench-updater/) with the node simulator,
100 Deployments of 10 Guaranteed pods each in an opted-in namespace, and the updater as its own
process (`bridgescale updater`, the service loop, without webhook or lease). Once every pod
runs and the updater has had a quiet pass, the ResourceRecommendation of every Deployment
gets a status with twice the pods' cpu and memory, and a watch notes when each pod's status
(the kubelet's, here the simulator's) shows the new resources with no restart.

The updater's rate limits are raised for the run (`BRIDGESCALE_UPDATER_MAX_CHANGES_PER_MINUTE`
and `..._MAX_WORKLOAD_CHANGES_PER_MINUTE`), as an operator rolling out a fleet-wide change
would: the defaults (20 per minute) exist to pace changes, not for speed. The last line is
`pods=<n> seconds=<s> p50_ms=<ms> p95_ms=<ms>`: seconds from the first recommendation written
to the last pod resized, and per pod from its recommendation written to its resize seen.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import support
from kubernetes import client, watch
from support import has_default_account, wait_for

from bridgescale import kube
from bridgescale.kube import recommendations as kube_recommendations
from bridgescale.kube.workloads import WorkloadRef
from bridgescale.localcluster.environment import LocalEnvironment
from bridgescale.localcluster.processes import ManagedProcess
from bridgescale.quantity import parse
from bridgescale.recommender.status import ContainerResult, recommendation_status
from bridgescale.simulator.runner import start_simulator

NAMESPACE = "bench-updater"
PODS_PER_DEPLOYMENT = 10
CPU, MEMORY = 0.05, 64 * 1024**2  # what each pod has: 50m and 64Mi, requests = limits
TARGET = {"cpu": 2 * CPU, "memory": 2 * MEMORY}
RATE_LIMIT = 100_000  # changes per minute: in effect none


def deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    amounts = {"cpu": f"{CPU * 1000:.0f}m", "memory": f"{MEMORY // 1024**2}Mi"}
    container = {
        "name": "bridge",
        "image": "bridgescale.dev/sim-bridge:1",
        "resources": {"requests": amounts, "limits": amounts},
        "resizePolicy": [
            {"resourceName": "cpu", "restartPolicy": "NotRequired"},
            {"resourceName": "memory", "restartPolicy": "NotRequired"},
        ],
    }
    usage = {
        "sim.bridgescale.dev/profile": "constant",
        "sim.bridgescale.dev/cpu": "5m",
        "sim.bridgescale.dev/memory": "40Mi",
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": usage},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 0},
            },
        },
    }


def resized(pod: Mapping[str, Any]) -> bool:
    """The pod's status shows the target (requests and limits) with no restart."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    if not statuses:
        return False
    for status in statuses:
        applied = status.get("resources") or {}
        if status.get("restartCount", 0) != 0:
            return False
        for field in ("requests", "limits"):
            for resource, wanted in TARGET.items():
                amount = (applied.get(field) or {}).get(resource)
                if amount is None or abs(parse(amount, resource) - wanted) > 1e-3 * wanted:
                    return False
    return True


class ResizeWatch:
    """When each pod of the namespace was first seen resized (monotonic seconds)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.seen: dict[str, float] = {}
        self.owner: dict[str, str] = {}  # pod: its Deployment
        self._api = api
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resize-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        try:
            self._follow()
        except Exception:  # the cluster stopping ends the watch too
            if not self._stop.is_set():
                raise

    def _follow(self) -> None:
        core = client.CoreV1Api(self._api)
        while not self._stop.is_set():
            listed = core.list_namespaced_pod(NAMESPACE)
            for pod in listed.items:
                self._note(self._api.sanitize_for_serialization(pod))
            stream = watch.Watch().stream(
                core.list_namespaced_pod,
                NAMESPACE,
                resource_version=listed.metadata.resource_version,
                timeout_seconds=60,
                _preload_content=False,
            )
            for event in stream:
                self._note(event["raw_object"])
                if self._stop.is_set():
                    return

    def _note(self, pod: Mapping[str, Any]) -> None:
        name = pod["metadata"]["name"]
        self.owner.setdefault(name, name.rsplit("-", 2)[0])
        if name not in self.seen and resized(pod):
            self.seen[name] = time.monotonic()


def running(api: client.ApiClient) -> int:
    pods = client.CoreV1Api(api).list_namespaced_pod(NAMESPACE).items
    return sum(1 for p in pods if p.status and p.status.phase == "Running")


def publish(api: client.ApiClient, names: list[str]) -> dict[str, float]:
    """Write each Deployment's recommendation status; when each was written."""
    apps = client.AppsV1Api(api)
    current = {}
    for name in names:
        uid = apps.read_namespaced_deployment(name, NAMESPACE).metadata.uid
        ref = WorkloadRef(NAMESPACE, "Deployment", name, "apps/v1", uid)
        current[name] = kube_recommendations.ensure_recommendation(api, ref)
    result = ContainerResult(
        "bridge",
        "bench",
        target=dict(TARGET),  # type: ignore[arg-type]
        lower_bound=dict(TARGET),  # type: ignore[arg-type]
        upper_bound=dict(TARGET),  # type: ignore[arg-type]
        uncapped_target=dict(TARGET),  # type: ignore[arg-type]
        confidence=1.0,
    )
    written = {}
    for name in names:
        status = recommendation_status([result], current[name].status, dt.datetime.now(dt.UTC))
        kube_recommendations.write_recommendation_status(api, current[name], status)
        written[name] = time.monotonic()
    return written


def start_updater(environment: LocalEnvironment) -> ManagedProcess:
    env = {
        **os.environ,
        "BRIDGESCALE_UPDATER_MAX_CHANGES_PER_MINUTE": str(RATE_LIMIT),
        "BRIDGESCALE_UPDATER_MAX_WORKLOAD_CHANGES_PER_MINUTE": str(RATE_LIMIT),
    }
    command = [
        sys.executable,
        "-m",
        "bridgescale",
        "updater",
        "--kubeconfig",
        str(environment.admin_kubeconfig),
        "--no-webhook",
        "--lease-namespace",
        "",
    ]
    return environment.supervisor.start("updater", command, env)


def run(
    environment: LocalEnvironment, pods: int, nodes: int, metrics_port: int
) -> dict[str, float]:
    deployments = [f"bridge-{i:03d}" for i in range(-(-pods // PODS_PER_DEPLOYMENT))]
    with environment.api_client() as api:
        start_simulator(
            environment.supervisor,
            api,
            environment.admin_kubeconfig,
            nodes=nodes,
            mig_nodes=0,
            shared_gpu_nodes=0,
            node_prefix="bench",
            metrics_port=metrics_port,
        )
        namespace = {"metadata": {"name": NAMESPACE, "labels": {"bridgescale.dev/enabled": "true"}}}
        kube.apply(api, [{"apiVersion": "v1", "kind": "Namespace", **namespace}])
        left = pods
        bodies = []
        for name in deployments:
            bodies.append(deployment(name, min(PODS_PER_DEPLOYMENT, left)))
            left -= PODS_PER_DEPLOYMENT
        wait_for(lambda: has_default_account(api, NAMESPACE), 60, "the namespace's account")
        kube.apply(api, bodies)
        started = time.monotonic()
        wait_for(lambda: running(api) >= pods, 900, f"{pods} pods Running")
        print(f"{pods} pods Running on {nodes} nodes after {time.monotonic() - started:.0f} s")

        updater = start_updater(environment)
        time.sleep(10)  # its first pass finds nothing to do
        if not updater.is_running():
            raise SystemExit(f"the updater exited; see {updater.log}")
        resizes = ResizeWatch(api)
        resizes.start()
        written = publish(api, deployments)
        first = min(written.values())
        print(f"{len(written)} recommendations written in {max(written.values()) - first:.1f} s")
        wait_for(lambda: len(resizes.seen) >= pods, 900, f"{pods} pods resized")
        resizes.stop()
    latencies = np.array(
        [(seen - written[resizes.owner[pod]]) * 1000 for pod, seen in resizes.seen.items()]
    )
    return {
        "pods": len(resizes.seen),
        "seconds": max(resizes.seen.values()) - first,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--port-base", type=int, default=21640)
    parser.add_argument("--keep-cluster", action="store_true")
    parser.add_argument("--state-dir", type=Path, help="default .bridgescale/bench-updater")
    options = parser.parse_args()

    environment = support.environment("bench-updater", options.port_base, options.state_dir)
    environment.down()  # an empty cluster: pods resized by an earlier run would count at once
    environment.clear()
    environment.up()
    try:
        figures = run(environment, options.pods, options.nodes, options.port_base + 10)
    finally:
        if not options.keep_cluster:
            environment.down()
    print(
        f"pods={figures['pods']:.0f} seconds={figures['seconds']:.1f} "
        f"p50_ms={figures['p50_ms']:.0f} p95_ms={figures['p95_ms']:.0f}"
    )


if __name__ == "__main__":
    main()
