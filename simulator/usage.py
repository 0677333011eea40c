"""What a simulated container uses, from its pod's annotations.

`container_usage` is the one place that maps a container to its usage: everything else (OOM
kills, throttling, metrics) asks it. The `constant` profile reads the annotations
`sim.bridgescale.dev/cpu`, `.../memory` and `.../gpu-memory` (quantities), the same for every
container of the pod.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from kubernetes.utils import parse_quantity

PROFILE = "sim.bridgescale.dev/profile"
CPU_ANNOTATION = "sim.bridgescale.dev/cpu"
MEMORY_ANNOTATION = "sim.bridgescale.dev/memory"
GPU_MEMORY_ANNOTATION = "sim.bridgescale.dev/gpu-memory"

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
    annotations: Mapping[str, str], container: str, seconds_since_start: float, now: float
) -> Usage:
    """The usage of `container` at Unix time `now`, `seconds_since_start` after it (re)started.

    A container without a profile idles.
    """
    profile = annotations.get(PROFILE)
    if profile is None:
        return IDLE
    if profile == "constant":
        return _constant(annotations)
    # TODO(bridgescale.simulator.workload merged): bridge profiles; until then they idle.
    logger.debug("unknown profile %r of container %s; it idles", profile, container)
    return IDLE


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
