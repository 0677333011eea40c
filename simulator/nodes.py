"""Node objects and node leases as a v1.37.2 kubelet registers and renews them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bridgescale.simulator.admission import NodeCapacity
from bridgescale.simulator.resources import CPU, MEMORY, Body, quantity_value
from bridgescale.simulator.settings import NodeLayout, Pool, SimulatorSettings

KUBELET_VERSION = "v1.37.2"
POOL_LABEL = "bridgescale.dev/pool"
CPU_MANAGER_LABEL = "sim.bridgescale.dev/cpu-manager-policy"
MEMORY_MANAGER_LABEL = "sim.bridgescale.dev/memory-manager-policy"
SWAP_LABEL = "sim.bridgescale.dev/swap-behavior"
LEASE_NAMESPACE = "kube-node-lease"
SUFFICIENT_MEMORY = "kubelet has sufficient memory available"
# `status.declaredFeatures` (NodeDeclaredFeatures, GA in 1.37) tells the API server and the
# scheduler what a node can do. A v1.37.2 kubelet with default gates declares
# InPlacePodLevelResourcesVerticalScaling, InPlacePodVerticalScalingInitContainers and
# RestartAllContainersOnContainerExits; the simulator declares only what it does. Without the
# first, the API server's NodeDeclaredFeatureValidator refuses a resize of pod-level resources.
# TODO(container restart rules simulated): declare RestartAllContainersOnContainerExits.
DECLARED_FEATURES = (
    "InPlacePodLevelResourcesVerticalScaling",
    "InPlacePodVerticalScalingInitContainers",
)


@dataclass(frozen=True)
class SimulatedNode:
    name: str
    pool: Pool
    static_cpu_manager: bool
    cpu: str
    memory: str
    pods: int
    index: int
    static_memory_manager: bool = False
    swap: bool = False

    @property
    def capacity(self) -> NodeCapacity:
        return NodeCapacity(
            cpu_millis=quantity_value(CPU, self.cpu),
            memory_bytes=quantity_value(MEMORY, self.memory),
            pods=self.pods,
            static_cpu_manager=self.static_cpu_manager,
            static_memory_manager=self.static_memory_manager,
            swap=self.swap,
        )

    def capacity_from(self, allocatable: Mapping[str, str]) -> NodeCapacity:
        """The capacity with the allocatable a Node object reports; the settings' for what it
        leaves out."""
        return replace(
            self.capacity,
            cpu_millis=quantity_value(CPU, allocatable.get(CPU, self.cpu)),
            memory_bytes=quantity_value(MEMORY, allocatable.get(MEMORY, self.memory)),
            pods=quantity_value("pods", allocatable.get("pods", str(self.pods))),
        )

    @property
    def address(self) -> str:
        return f"10.200.{self.index // 250}.{self.index % 250 + 1}"


def simulated_nodes(settings: SimulatorSettings) -> list[SimulatedNode]:
    return [simulated_node(layout, settings, i) for i, layout in enumerate(settings.pools())]


def simulated_node(layout: NodeLayout, settings: SimulatorSettings, index: int) -> SimulatedNode:
    return SimulatedNode(
        name=layout.name,
        pool=layout.pool,
        static_cpu_manager=layout.static_cpu_manager,
        cpu=settings.node_cpu,
        memory=settings.node_memory,
        pods=settings.node_pods,
        index=index,
        static_memory_manager=layout.static_memory_manager,
        swap=layout.swap,
    )


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_body(node: SimulatedNode) -> Body:
    """The Node a kubelet registers: labels, capacity, allocatable, info and addresses."""
    # Upstream's spelling: cpu manager policies are lower case, memory manager ones capitalised.
    cpu_policy = "static" if node.static_cpu_manager else "none"
    memory_policy = "Static" if node.static_memory_manager else "None"
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
                CPU_MANAGER_LABEL: cpu_policy,
                MEMORY_MANAGER_LABEL: memory_policy,
                SWAP_LABEL: "LimitedSwap" if node.swap else "NoSwap",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
        "status": node_status(node),
    }


def node_status(node: SimulatedNode) -> Body:
    resources = {"cpu": node.cpu, "memory": node.memory, "pods": str(node.pods)}
    machine = hashlib.sha256(node.name.encode()).hexdigest()[:32]
    info = node_info(machine)
    if node.swap:  # a kubelet reports the swap it found; the simulated swap is as big as memory
        info["swap"] = {"capacity": quantity_value(MEMORY, node.memory)}
    return {
        "capacity": resources,
        "allocatable": resources,
        "conditions": node_conditions(),
        "addresses": [
            {"type": "InternalIP", "address": node.address},
            {"type": "Hostname", "address": node.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": info,
        "declaredFeatures": list(DECLARED_FEATURES),
    }


def node_info(machine: str) -> Body:
    return {
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
