"""The demo fleet: simulation bridges in the namespace `bridges`, opted in to bridgescale.

- `lidar-bridge`, a StatefulSet of 2: a router and a telemetry sidecar per pod;
- `camera-bridge`, a Deployment of 2, half the size;
- `pointcloud`, a Deployment of 1 whose router decimates point clouds on a MIG slice of a
  simulated GPU (a DRA claim from a ResourceClaimTemplate).

Their usage follows the bridge profiles of `bridgescale.simulator.workload`, chosen by the pod
annotation `sim.bridgescale.dev/profile: bridge` (each container by its name).
"""

from __future__ import annotations

from typing import Any

NAMESPACE = "bridges"
ENABLED_LABEL = "bridgescale.dev/enabled"
MIG_CLASS = "mig.gpu.sim.bridgescale.dev"
MIG_DRIVER = "gpu.sim.bridgescale.dev"

Body = dict[str, Any]


def _resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> Body:
    return {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu_limit, "memory": memory_limit},
    }


def bridge_pod(app: str, scale: float, gpu_claim: str | None = None) -> Body:
    def size(amount: float, unit: str) -> str:
        return f"{round(amount * scale, 3):g}{unit}"

    router: Body = {
        "name": "router",
        "image": "bridgescale.dev/sim-bridge:1",
        "resources": _resources(size(1, ""), size(3, "Gi"), size(2, ""), size(6, "Gi")),
        "resizePolicy": [
            {"resourceName": "cpu", "restartPolicy": "NotRequired"},
            {"resourceName": "memory", "restartPolicy": "NotRequired"},
        ],
    }
    telemetry: Body = {
        "name": "telemetry",
        "image": "bridgescale.dev/sim-telemetry:1",
        "resources": _resources(size(100, "m"), size(256, "Mi"), size(500, "m"), size(1, "Gi")),
    }
    spec: Body = {"containers": [router, telemetry], "terminationGracePeriodSeconds": 30}
    if gpu_claim:
        router["resources"]["claims"] = [{"name": "gpu"}]
        spec["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": gpu_claim}]
    return {
        "metadata": {
            "labels": {"app": app},
            "annotations": {
                "sim.bridgescale.dev/profile": "bridge",
                "sim.bridgescale.dev/scale": f"{scale:g}",
            },
        },
        "spec": spec,
    }


def manifests(namespace: str = NAMESPACE, scale: float = 1.0) -> list[Body]:
    """Every object of the demo fleet, in the order they can be created; `scale` sizes every
    bridge (and its simulated usage) down or up, for tests that share nodes."""
    opted_in: Body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {ENABLED_LABEL: "true"}},
    }
    lidar: Body = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "lidar-bridge", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "serviceName": "lidar-bridge",
            "selector": {"matchLabels": {"app": "lidar-bridge"}},
            "template": bridge_pod("lidar-bridge", scale),
        },
    }
    camera = _deployment("camera-bridge", 2, bridge_pod("camera-bridge", 0.5 * scale))
    gpu_template = _mig_claim_template("pointcloud-gpu", "1g.10gb")
    gpu_template["metadata"]["namespace"] = namespace
    gpu_pod = bridge_pod("pointcloud", scale, "pointcloud-gpu")
    pointcloud = _deployment("pointcloud", 1, gpu_pod)
    for workload in (camera, pointcloud):
        workload["metadata"]["namespace"] = namespace
    return [opted_in, lidar, camera, gpu_template, pointcloud]


def _deployment(name: str, replicas: int, template: Body) -> Body:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template,
        },
    }


def _mig_claim_template(name: str, profile: str) -> Body:
    """A template for claims of one MIG-like slice of the given profile."""
    selector = {"cel": {"expression": f"device.attributes['{MIG_DRIVER}'].profile == '{profile}'"}}
    request = {
        "name": "gpu",
        "exactly": {"deviceClassName": MIG_CLASS, "selectors": [selector]},
    }
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"spec": {"devices": {"requests": [request]}}},
    }
