"""How much the node simulator costs: 500 pods on 20 simulated nodes, kept Running and scraped
every 15 s as Prometheus would, while the simulator's cpu time and resident memory are read.

    .venv/bin/python bench/simulator.py [--window 60] [--port-base 21440] [--keep-cluster]

It starts its own local cluster (state in .bridgescale/bench/) and stops it at the end. The last
line is `pods=500 nodes=20 cpu_percent=<p> rss_mb=<mb>`: cpu_percent is the simulator's share of
one core over the measured window, after every pod runs.
"""

from __future__ import annotations

import argparse
import os
import time
import urllib.request
from pathlib import Path
from typing import Any, cast

from kubernetes import client
from support import wait_for

from bridgescale.localcluster.environment import LocalEnvironment
from bridgescale.localcluster.settings import LocalClusterSettings, find_project_root
from bridgescale.simulator.runner import start_simulator

PODS = 500
NODES = 20
DEPLOYMENTS = 10
SCRAPE_SECONDS = 15
NAMESPACE = "bench"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def deployment(index: int, replicas: int) -> dict[str, object]:
    labels = {"app": f"bridge-{index}"}
    resources = {"cpu": "10m", "memory": "64Mi"}
    usage = {
        "sim.bridgescale.dev/profile": "constant",
        "sim.bridgescale.dev/cpu": "5m",
        "sim.bridgescale.dev/memory": "40Mi",
    }
    container = {
        "name": "bridge",
        "image": "bridgescale.dev/sim-bridge:1",
        "resources": {"requests": resources, "limits": resources},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"bridge-{index}"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": usage},
                "spec": {"containers": [container]},
            },
        },
    }


def running_pods(core: client.CoreV1Api) -> int:
    pods = core.list_namespaced_pod(NAMESPACE, field_selector="status.phase=Running").items
    return len(pods)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured")
    parser.add_argument("--port-base", type=int, default=21440)
    parser.add_argument("--keep-cluster", action="store_true")
    options = parser.parse_args()

    state_dir = find_project_root(Path(__file__)) / ".bridgescale" / "bench"
    environment = LocalEnvironment(
        LocalClusterSettings(state_dir=state_dir, port_base=options.port_base), progress=print
    )
    environment.up()
    try:
        run(environment, options.window, options.port_base + 10)
    finally:
        if not options.keep_cluster:
            environment.down()


def run(environment: LocalEnvironment, window: float, metrics_port: int) -> None:
    with environment.api_client() as api:
        simulator = start_simulator(
            environment.supervisor,
            api,
            environment.admin_kubeconfig,
            nodes=NODES,
            mig_nodes=0,
            shared_gpu_nodes=0,
            node_prefix="bench",
            metrics_port=metrics_port,
        )
        core = client.CoreV1Api(api)
        if NAMESPACE not in {ns.metadata.name for ns in core.list_namespace().items if ns.metadata}:
            core.create_namespace(cast(Any, {"metadata": {"name": NAMESPACE}}))
        apps = client.AppsV1Api(api)
        for index in range(DEPLOYMENTS):
            body = deployment(index, PODS // DEPLOYMENTS)
            apps.create_namespaced_deployment(NAMESPACE, cast(Any, body))
        started = time.monotonic()
        wait_for(lambda: running_pods(core) >= PODS, 600, f"{PODS} pods Running")
        print(f"{PODS} pods Running after {time.monotonic() - started:.0f} s")

        url = f"http://127.0.0.1:{metrics_port}/metrics"
        before, began = cpu_seconds(simulator.pid), time.monotonic()
        series = 0
        while time.monotonic() - began < window:
            with urllib.request.urlopen(url, timeout=10) as response:
                series = sum(1 for line in response if not line.startswith(b"#"))
            time.sleep(SCRAPE_SECONDS)
        elapsed = time.monotonic() - began
        used = cpu_seconds(simulator.pid) - before
        still_running = running_pods(core)
    print(f"last scrape: {series} series; {still_running} pods Running at the end")
    if still_running < PODS:
        raise SystemExit(f"only {still_running} of {PODS} pods stayed Running")
    cpu_percent, memory = 100 * used / elapsed, rss_mb(simulator.pid)
    print(f"pods={PODS} nodes={NODES} cpu_percent={cpu_percent:.1f} rss_mb={memory:.0f}")


if __name__ == "__main__":
    main()
