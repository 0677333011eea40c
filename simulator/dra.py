"""Simulated GPUs as DRA ResourceSlices (`resource.k8s.io/v1`) and their DeviceClasses.

- `mig` nodes: one 80 GB GPU partitionable into MIG-like profiles. Its pool has two slices, as
  the API requires since 1.35: one with the GPU's shared counters (7 compute slices, 80Gi), one
  with the devices (every profile instance the GPU could hold), each consuming its share. The
  real scheduler allocates a profile only while the counters last.
- `shared` nodes: one 80 GB GPU that many claims share, each taking `memory` capacity
  (`capacity.requests.memory` in the claim; consumable capacity, beta in 1.36).
"""

from __future__ import annotations

from dataclasses import dataclass

from bridgescale.simulator.nodes import SimulatedNode
from bridgescale.simulator.resources import MEMORY, Body, quantity_value

DRIVER = "gpu.sim.bridgescale.dev"
MIG_CLASS = "mig.gpu.sim.bridgescale.dev"
SHARED_CLASS = "shared.gpu.sim.bridgescale.dev"
GPU_MEMORY = "80Gi"
COUNTER_SET = "gpu-0"


@dataclass(frozen=True)
class MigProfile:
    name: str
    compute: int
    memory: str
    instances: int


MIG_PROFILES = (
    MigProfile("1g.10gb", 1, "10Gi", 7),
    MigProfile("2g.20gb", 2, "20Gi", 3),
    MigProfile("3g.40gb", 3, "40Gi", 2),
    MigProfile("7g.80gb", 7, "80Gi", 1),
)


def device_classes() -> list[Body]:
    def device_class(name: str, kind: str) -> Body:
        expression = (
            f"device.driver == '{DRIVER}' && device.attributes['{DRIVER}'].type == '{kind}'"
        )
        return {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "DeviceClass",
            "metadata": {"name": name},
            "spec": {"selectors": [{"cel": {"expression": expression}}]},
        }

    return [device_class(MIG_CLASS, "mig"), device_class(SHARED_CLASS, "shared")]


def mig_device_name(profile: MigProfile, instance: int) -> str:
    return f"gpu-0-{profile.name.replace('.', '-')}-{instance}"


def resource_slices(node: SimulatedNode, owner: Body) -> list[Body]:
    """The node's slices; `owner` is its Node object (slices go when the node goes)."""
    if node.pool == "mig":
        specs = [_mig_counters(), _mig_devices()]
    elif node.pool == "shared":
        specs = [_shared_devices()]
    else:
        return []
    return [_slice(node, owner, index, len(specs), spec) for index, spec in enumerate(specs)]


def _slice(node: SimulatedNode, owner: Body, index: int, count: int, spec: Body) -> Body:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {
            "name": f"{node.name}-{DRIVER}-{index}",
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "name": node.name,
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {
            "driver": DRIVER,
            "nodeName": node.name,
            "pool": {"name": node.name, "generation": 1, "resourceSliceCount": count},
            **spec,
        },
    }


def _mig_counters() -> Body:
    counters = {"compute": {"value": "7"}, "memory": {"value": GPU_MEMORY}}
    return {"sharedCounters": [{"name": COUNTER_SET, "counters": counters}]}


def _mig_devices() -> Body:
    devices = [
        {
            "name": mig_device_name(profile, instance),
            "attributes": {
                "type": {"string": "mig"},
                "profile": {"string": profile.name},
                "uuid": {"string": f"MIG-sim-{profile.name}-{instance}"},
            },
            "capacity": {"memory": {"value": profile.memory}},
            "consumesCounters": [
                {
                    "counterSet": COUNTER_SET,
                    "counters": {
                        "compute": {"value": str(profile.compute)},
                        "memory": {"value": profile.memory},
                    },
                }
            ],
        }
        for profile in MIG_PROFILES
        for instance in range(profile.instances)
    ]
    return {"devices": devices}


def _shared_devices() -> Body:
    device = {
        "name": "gpu-0",
        "allowMultipleAllocations": True,
        "attributes": {"type": {"string": "shared"}, "uuid": {"string": "GPU-sim-shared-0"}},
        "capacity": {
            "memory": {
                "value": GPU_MEMORY,
                "requestPolicy": {"default": "1Gi", "validRange": {"min": "1Gi"}},
            }
        },
    }
    return {"devices": [device]}


@dataclass(frozen=True)
class AllocatedDevice:
    """One device allocated to a claim, as the kubelet reports its health and DCGM its use."""

    claim: str  # the pod's name for the claim (`spec.resourceClaims[].name`)
    request: str
    pool: str
    device: str
    memory_bytes: int
    profile: str | None

    @property
    def resource_id(self) -> str:
        return f"{DRIVER}/{self.pool}/{self.device}"


def allocated_devices(pod_claim: str, claim: Body) -> list[AllocatedDevice]:
    """The simulated GPUs in a claim's allocation, with the GPU memory each gives the claim."""
    results = (((claim.get("status") or {}).get("allocation") or {}).get("devices") or {}).get(
        "results"
    ) or []
    return [_allocated(pod_claim, result) for result in results if result.get("driver") == DRIVER]


def _allocated(pod_claim: str, result: Body) -> AllocatedDevice:
    consumed = (result.get("consumedCapacity") or {}).get("memory")
    profile = next(
        (p for p in MIG_PROFILES if result["device"].startswith(mig_device_name(p, 0)[:-1])), None
    )
    if consumed is not None:
        memory = quantity_value(MEMORY, consumed)
    else:
        memory = quantity_value(MEMORY, profile.memory if profile else GPU_MEMORY)
    return AllocatedDevice(
        claim=pod_claim,
        request=result["request"],
        pool=result["pool"],
        device=result["device"],
        memory_bytes=memory,
        profile=profile.name if profile else None,
    )


def claim_ready_for(claim: Body, pod_uid: str) -> bool:
    """Allocated and reserved for the pod: then the kubelet may prepare it and start the pod."""
    status = claim.get("status") or {}
    reserved = status.get("reservedFor") or []
    return bool(status.get("allocation")) and any(r.get("uid") == pod_uid for r in reserved)
