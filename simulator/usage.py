"""What a simulated container uses, from its pod's annotations.

`container_usage` is the one place that maps a container to its usage: everything else (OOM
kills, throttling, metrics, the backfilled history) asks it. Profiles, by the pod annotation
`sim.bridgescale.dev/profile`:
- `constant` reads the annotations `sim.bridgescale.dev/cpu`, `.../memory` and `.../gpu-memory`
  (quantities), the same for every container of the pod;
- `bridge` follows the synthetic bridge workload (`bridgescale.simulator.workload`): each
  container by its name (`router`, `telemetry`; others idle as a constant profile), scaled by
  `sim.bridgescale.dev/scale` (default 1), with draws seeded by the pod and container names, so
  that replicas differ and history and live usage agree. Two more annotations turn the load
  of a running pod, as a scenario does (the demo's load burst and point-cloud phase):
  `sim.bridgescale.dev/load-scale` multiplies the sensor load (cpu, and memory a little) and
  `sim.bridgescale.dev/gpu-load-scale` the GPU memory; both default to 1.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
from kubernetes.utils import parse_quantity

from bridgescale.simulator import workload

PROFILE = "sim.bridgescale.dev/profile"
CPU_ANNOTATION = "sim.bridgescale.dev/cpu"
MEMORY_ANNOTATION = "sim.bridgescale.dev/memory"
GPU_MEMORY_ANNOTATION = "sim.bridgescale.dev/gpu-memory"
SCALE_ANNOTATION = "sim.bridgescale.dev/scale"
LOAD_SCALE_ANNOTATION = "sim.bridgescale.dev/load-scale"
GPU_LOAD_SCALE_ANNOTATION = "sim.bridgescale.dev/gpu-load-scale"
MAX_LOAD_SCALE = 100.0
BRIDGE = "bridge"

IDLE_CPU_CORES = 0.001
IDLE_MEMORY_BYTES = 4 * 1024 * 1024

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Usage:
    """Demand of one container at one instant: cpu in cores, memory and GPU memory in bytes."""

    cpu_cores: float
    memory_bytes: int
    gpu_memory_bytes: int = 0


IDLE = Usage(IDLE_CPU_CORES, IDLE_MEMORY_BYTES)


def container_usage(
    annotations: Mapping[str, str],
    pod: str,
    container: str,
    seconds_since_start: float,
    now: float,
) -> Usage:
    """The usage of `container` of `pod` ("namespace/name") at Unix time `now`,
    `seconds_since_start` after the container (re)started.

    A container without a profile idles.
    """
    profile = annotations.get(PROFILE)
    if profile is None:
        return IDLE
    if profile == "constant":
        return _constant(annotations)
    if profile == BRIDGE:
        values = bridge_usage(annotations, pod, container, np.array([now]))
        memory = float(values["memory"][0])
        if seconds_since_start <= 0:
            # A process that just started holds its resident set, not its leak or burst.
            memory = min(memory, bridge_profile(annotations, container).memory_bytes)
        return Usage(float(values["cpu"][0]), int(memory), int(values["vram"][0]))
    logger.debug("unknown profile %r of container %s; it idles", profile, container)
    return IDLE


def bridge_profile(annotations: Mapping[str, str], container: str) -> workload.ContainerProfile:
    """The bridge workload profile of a container, scaled by the pod's annotation."""
    base = workload.BridgeProfile().containers.get(container, workload.CONSTANT)
    scale = _quantity(annotations, SCALE_ANNOTATION, 1.0)
    if scale <= 0:
        logger.warning("annotation %s must be above 0; using 1", SCALE_ANNOTATION)
        scale = 1.0
    return replace(
        base,
        cpu_cores=base.cpu_cores * scale,
        memory_bytes=base.memory_bytes * scale,
        vram_bytes=base.vram_bytes * scale,
        leak_bytes_per_day=base.leak_bytes_per_day * scale,
        gpu_batch_bytes=base.gpu_batch_bytes * scale,
    )


def bridge_usage(
    annotations: Mapping[str, str], pod: str, container: str, timestamps: workload.FloatArray
) -> dict[str, workload.FloatArray]:
    """Bridge usage of a container at many instants (vectorised), for live use and history."""
    seed = workload.hash_text(f"{pod}/{container}")
    return workload.usage(
        bridge_profile(annotations, container),
        seed,
        timestamps,
        load=load_scale(annotations, LOAD_SCALE_ANNOTATION),
        gpu_load=load_scale(annotations, GPU_LOAD_SCALE_ANNOTATION),
    )


def load_scale(annotations: Mapping[str, str], key: str) -> float:
    """A load multiplier from an annotation: 1 when absent; a bad value is logged and ignored."""
    scale = _quantity(annotations, key, 1.0)
    if not 0 < scale <= MAX_LOAD_SCALE:
        logger.warning("annotation %s must be in (0, %g]; using 1", key, MAX_LOAD_SCALE)
        return 1.0
    return scale


def _constant(annotations: Mapping[str, str]) -> Usage:
    return Usage(
        cpu_cores=float(_quantity(annotations, CPU_ANNOTATION, IDLE_CPU_CORES)),
        memory_bytes=int(_quantity(annotations, MEMORY_ANNOTATION, IDLE_MEMORY_BYTES)),
        gpu_memory_bytes=int(_quantity(annotations, GPU_MEMORY_ANNOTATION, 0)),
    )


def _quantity(annotations: Mapping[str, str], key: str, default: float) -> float:
    text = annotations.get(key)
    if text is None:
        return default
    try:
        return float(parse_quantity(text))  # type: ignore[no-untyped-call]
    except ValueError:
        logger.warning("annotation %s=%r is not a quantity; using %s", key, text, default)
        return default
