"""Node objects and node leases as a v1.37.2 kubelet registers and renews them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from bridgescale.simulator.admission import NodeCapacity
from bridgescale.simulator.resources import CPU, MEMORY, Body, quantity_value
from bridgescale.simulator.settings import Pool, SimulatorSettings

KUBELET_VERSION = "v1.37.2"
POOL_LABEL = "bridgescale.dev/pool"
CPU_MANAGER_LABEL = "sim.bridgescale.dev/cpu-manager-policy"
LEASE_NAMESPACE = "kube-node-lease"
SUFFICIENT_MEMORY = "kubelet has sufficient memory available"
# `status.declaredFeatures` (NodeDeclaredFeatures, GA in 1.37) tells the API server and the
# scheduler what a node can do. A v1.37.2 kubelet with default gates declares
# InPlacePodLevelResourcesVerticalScaling, InPlacePodVerticalScalingInitContainers and
# RestartAllContainersOnContainerExits; the simulator declares only what it does.
# TODO(pod-level resources and container restart rules simulated): declare the other two.
DECLARED_FEATURES = ("InPlacePodVerticalScalingInitContainers",)


@dataclass(frozen=True)
class SimulatedNode:
    name: str
    pool: Pool
    static_cpu_manager: bool
    cpu: str
    memory: str
    pods: int
    index: int

    @property
    def capacity(self) -> NodeCapacity:
        return NodeCapacity(
            cpu_millis=quantity_value(CPU, self.cpu),
            memory_bytes=quantity_value(MEMORY, self.memory),
            pods=self.pods,
            static_cpu_manager=self.static_cpu_manager,
        )

    @property
    def address(self) -> str:
        return f"10.200.{self.index // 250}.{self.index % 250 + 1}"


def simulated_nodes(settings: SimulatorSettings) -> list[SimulatedNode]:
    return [
        SimulatedNode(
            name, pool, static, settings.node_cpu, settings.node_memory, settings.node_pods, i
        )
        for i, (name, pool, static) in enumerate(settings.pools())
    ]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_body(node: SimulatedNode) -> Body:
    """The Node a kubelet registers: labels, capacity, allocatable, info and addresses."""
    policy = "static" if node.static_cpu_manager else "none"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": {
                "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                POOL_LABEL: node.pool,
                CPU_MANAGER_LABEL: policy,
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
        "status": node_status(node),
    }


def node_status(node: SimulatedNode) -> Body:
    resources = {"cpu": node.cpu, "memory": node.memory, "pods": str(node.pods)}
    machine = hashlib.sha256(node.name.encode()).hexdigest()[:32]
    return {
        "capacity": resources,
        "allocatable": resources,
        "conditions": node_conditions(),
        "addresses": [
            {"type": "InternalIP", "address": node.address},
            {"type": "Hostname", "address": node.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": machine,
            "systemUUID": machine,
            "bootID": machine,
            "kernelVersion": "6.1.0-sim",
            "osImage": "bridgescale node simulator",
            "containerRuntimeVersion": "sim://1.0.0",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
        "declaredFeatures": list(DECLARED_FEATURES),
    }


def node_conditions() -> list[Body]:
    now = now_rfc3339()
    states = (
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", SUFFICIENT_MEMORY),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    )
    return [
        {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        for kind, status, reason, message in states
    ]


def lease_body(node: Body, duration_seconds: int) -> Body:
    """The node's Lease in kube-node-lease, owned by the Node as the kubelet makes it."""
    name = node["metadata"]["name"]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}
            ],
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": duration_seconds,
            "renewTime": now_micro(),
        },
    }
